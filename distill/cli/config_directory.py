"""Where the commands find ``conf/``: inside the installed package (wheel), else beside it (source checkout)."""

from __future__ import annotations

from pathlib import Path


def config_dir() -> Path:
    """``conf/`` inside the installed package (wheel), else beside it (source checkout)."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise RuntimeError(f"distill's conf/ directory is missing (looked in {package} and {package.parent})")
