"""User-facing errors: one line that says what was wrong and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DistillError(ValueError):
    """A mistake in the user's input (config, checkpoint, data, model pair).

    The command-line entry points print its message as a single line and exit
    with a non-zero code instead of showing a traceback.
    """


def close_matches(word: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ``" (did you mean a, b?)"`` for the nearest choices, or ``""``."""
    matches = difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)
    return f" (did you mean {', '.join(matches)}?)" if matches else ""


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its type's name when it has none (for one-line errors)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
