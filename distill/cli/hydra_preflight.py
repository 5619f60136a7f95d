"""The command line read and composed as Hydra will, before Hydra runs, so that Hydra's refusals are one line.

Hydra answers an override it cannot read (``trainer.max_epochs=[``) or cannot apply
(``+trainer.max_epochs=3`` on a key that exists, ``~logger.save_dir`` on an interpolation)
with several lines, exit code 1 and advice about ``HYDRA_FULL_ERROR``. Here Hydra's own
argument parser, override parser and composition run first, in the mode the run will use
(and, for a sweep, on its first job too); what fails becomes one :class:`DistillError`,
exit code 2 like every other mistake in the input. With ``HYDRA_FULL_ERROR=1`` these
checks step aside and Hydra reports in full, with its traceback.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from distill.errors import DistillError, first_line

#: how to write a value the grammar cannot read unquoted
QUOTING = (
    "close every [ { ( and quote a value holding spaces, commas, brackets or '=' as key='...' "
    "(inside the shell's quotes: \"key='...'\")"
)
#: the most options of a config group named in one line
LISTED_OPTIONS = 20


def hydra_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """``argv`` read by Hydra's own argument parser (flags such as ``-m`` apart from the overrides)."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()

    def refuse(message: str) -> None:
        flags = [a for a in argv if a.partition("=")[0] in parser._option_string_actions]
        if message.startswith("unrecognized arguments") and flags and argv.index(flags[-1]) > 0:
            # argparse stops reading overrides at the first flag: `a=1 -m b=2` leaves b=2 over
            raise DistillError(f"{message}: put flags such as {flags[-1]} before the overrides "
                               f"(python -m distill.run {flags[-1]} key=value ...)")
        raise DistillError(f"{message}; the overrides are key=value, Hydra's flags are listed by --hydra-help")

    parser.error = refuse  # type: ignore[method-assign]  # argparse would print its usage and exit
    return parser.parse_args(list(argv))


def _full_error() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def check_grammar(argv: Sequence[str]) -> None:
    """Raise :class:`DistillError` for the first override Hydra's override grammar cannot read."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    if _full_error():
        return
    parser = OverridesParser.create()
    for text in hydra_arguments(argv).overrides:
        try:
            parsed = parser.parse_overrides([text])
        except OverrideParseException as error:
            raise DistillError(f"cannot read the override {text}: {_grammar_reason(text, error)}; {QUOTING}") from None
        if parsed and not parsed[0].key_or_group:
            raise DistillError(f"the override {text} has no key: write key=value, e.g. trainer.max_epochs=5")


def _grammar_reason(text: str, error: Exception) -> str:
    """What the grammar choked on, in a few words (Hydra's own words, without its token lists and link)."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Error parsing override", "See https://"))]
    if not lines:
        return "Hydra's override grammar cannot read it"
    reason = lines[0]
    if reason.startswith("LexerNoViableAltException") and len(lines) > 1 and "^" in lines[1]:
        position = lines[1].index("^") - len("LexerNoViableAltException: ")
        if 0 <= position < len(text):
            return f"unexpected {text[position]!r} at character {position + 1}"
    if reason == "missing EQUAL at '<EOF>'":
        return "there is no '=' (write key=value)"
    return reason.split(" expecting {")[0]


def check_composition(argv: Sequence[str], config_dir: Path, config_name: str) -> None:
    """Compose ``config_name`` with ``argv``'s overrides as Hydra will (for a sweep: also its first job);
    raise :class:`DistillError` with Hydra's reason in one line when that fails."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    if _full_error():
        return
    args = hydra_arguments(argv)
    if (args.config_path or args.config_name or args.config_dir or args.experimental_rerun or args.help
            or args.hydra_help or args.shell_completion or args.info):
        return  # another config, or nothing composed: Hydra's to handle
    overrides = list(args.overrides)
    with initialize_config_dir(str(config_dir), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        assert hydra is not None
        multirun = args.multirun or hydra.get_mode(config_name=config_name, overrides=overrides) == RunMode.MULTIRUN
        _compose(hydra, config_name, overrides, RunMode.MULTIRUN if multirun and not args.cfg else RunMode.RUN)
        if multirun:
            _compose(hydra, config_name, first_job(overrides), RunMode.RUN)


def first_job(overrides: Sequence[str]) -> list[str]:
    """A sweep's first job: each swept value (``a=1,2``, ``range(1,3)``) replaced by its first; a sweeper's own
    search spaces (``interval(0,1)``) left out."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    job = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if not override.is_sweep_override():
            job.append(override.input_line)
            continue
        if not override.is_discrete_sweep():
            continue
        try:
            job.append(f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}")
        except (HydraException, StopIteration):
            continue  # a glob over a group's options, or an empty sweep: Hydra expands those itself
    return job


def _compose(hydra: object, config_name: str, overrides: list[str], run_mode: object) -> None:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        hydra.compose_config(config_name=config_name, overrides=overrides, run_mode=run_mode)  # type: ignore[attr-defined]
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        if isinstance(error, DistillError):
            raise
        raise DistillError(f"the command line does not compose: {composition_reason(error)}") from None


def composition_reason(error: BaseException) -> str:
    """Hydra's message in one line: its lines joined, the cause's first line after the first, the search path
    and the link dropped, a group's options listed on the line."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import InterpolationResolutionError

    lines = [line.strip() for line in str(error).split("Config search path:")[0].splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("See https://")] or [type(error).__name__]
    if isinstance(error, MissingConfigException):
        return _missing_config(lines)
    head = lines[0].rstrip(".")
    cause = error.__cause__
    if cause is not None and str(cause).strip():
        head += f" ({first_line(cause)})"
    parts = [head, *(line.rstrip(".") for line in lines[1:])]
    if head.startswith("Error merging override ~") and isinstance(cause, InterpolationResolutionError):
        key = head.removeprefix("Error merging override ~").split(" ")[0].partition("=")[0]
        parts.append(f"{key} is an interpolation that is resolved only once the run starts, so Hydra cannot "
                     f"delete it: set it instead ({key}=VALUE, or {key}=null)")
    return "; ".join(parts)


def _missing_config(lines: list[str]) -> str:
    """``Could not find 'teacher/nope'`` with the group's options (Hydra lists one per line)."""
    head, options, group = lines[0], [], ""
    for line in lines[1:]:
        if line.startswith("Available options in "):
            group = line.removeprefix("Available options in ").rstrip(":")
        elif group:
            options.append(line)
    if not options:
        return head
    shown = ", ".join(options[:LISTED_OPTIONS]) + (f" and {len(options) - LISTED_OPTIONS} more" if len(options) > LISTED_OPTIONS else "")
    return f"{head}; the options of {group} are {shown}"
