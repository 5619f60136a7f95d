"""The commands' one error policy: a mistake in the input is one line on stderr and exit code 2.

- :class:`~distill.errors.DistillError` (also when Hydra wraps it while instantiating a
  config) and a ``???`` the command line did not fill: ``error: <one line>``, exit 2;
  ``HYDRA_FULL_ERROR=1`` shows the traceback instead.
- In a sweep (``-m``), a failing job records ``failed.json`` for the sweep summary and
  the others run on.
- SIGTERM (a cluster's preemption notice): exit 143 with how to resume.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from distill.errors import DistillError
from distill.io import atomic_write_text
from distill.lightning_warnings import ignore_lightning_noise

T = TypeVar("T")

#: the exit code of a mistake in the input; 143 (128 + SIGTERM) for a stopped run
EXIT_BAD_INPUT, EXIT_SIGTERM = 2, 143


def fail(error: BaseException) -> NoReturn:
    """Print ``error: <message>`` and exit with code 2."""
    sys.stdout.flush()  # the error is the last line, after anything already printed
    print(f"error: {error}", file=sys.stderr, flush=True)
    sys.exit(EXIT_BAD_INPUT)


def user_error(error: BaseException) -> DistillError | None:
    """The :class:`DistillError` behind ``error`` (Hydra wraps those it meets while instantiating), else None."""
    from hydra.errors import InstantiationException

    cause = error if isinstance(error, DistillError) else error.__cause__
    if isinstance(error, (DistillError, InstantiationException)) and isinstance(cause, DistillError):
        return cause
    return None


def guarded(job: Callable[[], T], failed_in_sweep: Any = None) -> T | Any:
    """Run a command's job under the error policy; in a sweep a failed job returns ``failed_in_sweep``."""
    # imported here, not at the top: ``fail`` serves commands that never load Hydra or Lightning
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import InstantiationException
    from hydra.types import RunMode
    from lightning.pytorch.utilities.exceptions import SIGTERMException
    from omegaconf.errors import MissingMandatoryValue

    try:
        return job()
    except SIGTERMException:
        from distill.cli.resume_checks import sigterm_advice

        if HydraConfig.initialized():
            print(sigterm_advice(Path(HydraConfig.get().runtime.output_dir)), file=sys.stderr)
        else:
            print("stopped by SIGTERM; resume with resume=true in the same run directory", file=sys.stderr)
        sys.exit(EXIT_SIGTERM)
    except MissingMandatoryValue as error:  # a ??? in the config that the command line did not fill
        fail(DistillError(f"{error.full_key} is not set; give {error.full_key}=... on the command line"))
    except (DistillError, InstantiationException) as error:
        cause = user_error(error)
        if cause is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            # one bad job of a sweep: record it for the sweep summary and let the others run
            run_dir = Path(HydraConfig.get().runtime.output_dir)
            atomic_write_text(run_dir / "failed.json", json.dumps({"error": str(cause)}) + "\n")
            print(f"error: {cause}", file=sys.stderr, flush=True)
            return failed_in_sweep
        fail(cause)


def command_entry(check_argv: Callable[[list[str]], Sequence[str] | None], main: Callable[[], Any]) -> None:
    """A command's ``cli()``: check (and possibly rewrite) ``sys.argv`` in one line, then run Hydra's ``main``."""
    ignore_lightning_noise()  # Lightning's notices a user can do nothing about (distill.lightning_warnings)
    try:
        rewritten = check_argv(sys.argv[1:])
    except DistillError as error:
        fail(error)
    if rewritten is not None:
        sys.argv[1:] = list(rewritten)
    main()
