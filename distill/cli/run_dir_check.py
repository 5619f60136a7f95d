"""The run and sweep directories given on the command line, checked before Hydra creates them.

An empty ``hydra.run.dir=`` (an unset shell variable) would put the run into the launch
directory, over the outputs already there: refused. A value is read as Hydra reads it
(quotes removed), so a quoted directory never leaves a stray tree named after the quotes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from distill.errors import DistillError, first_line

#: the keys that name where a run writes
DIRECTORY_KEYS = ("hydra.run.dir", "hydra.sweep.dir")


def check_run_dirs(argv: Sequence[str]) -> None:
    """Fail early, with one line, when a run or sweep directory is empty or cannot be made."""
    given = False
    for arg in argv:
        key, _, raw = arg.partition("=")
        key = key.lstrip("+")
        if key not in DIRECTORY_KEYS:
            continue
        given = True
        value = _parsed(arg, key, raw)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise DistillError(
                f"{key} is empty (an unset shell variable?): the run would be written into the launch "
                f"directory {Path.cwd()}, over what is there; give a directory, e.g. {key}=outputs/my_run"
            )
        if not isinstance(value, str) or "${" in value:
            continue  # a sweep over directories, or an interpolation: Hydra resolves it per job
        _check_writable(Path(value).expanduser(), key)
    if not given and not os.access(Path.cwd(), os.W_OK | os.X_OK):
        raise DistillError(
            f"cannot write the run's outputs under {Path.cwd()} (not writable); "
            "run from a writable directory or set hydra.run.dir=PATH"
        )


def _parsed(arg: str, key: str, raw: str) -> object:
    try:
        return OverridesParser.create().parse_overrides([arg])[0].value()
    except HydraException as error:
        raise DistillError(f"{key}={raw} cannot be read as a directory ({first_line(error)}); quote it as {key}='...'") from None


def _check_writable(path: Path, key: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        writable = os.access(path, os.W_OK | os.X_OK)
        reason = "not writable"
    except OSError as error:
        writable, reason = False, error.strerror
    if not writable:
        raise DistillError(f"cannot write the run's outputs to {path} ({reason}); set {key} to a writable directory")
