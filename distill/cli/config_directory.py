"""Where the commands find ``conf/`` (in the wheel or beside the checkout), and the model-name options with it."""

from __future__ import annotations

from pathlib import Path

from distill.cli.model_shortcuts import register_model_shortcuts


def config_dir() -> Path:
    """``conf/`` inside the installed package (wheel), else beside it (source checkout).

    Also registers ``teacher=NAME`` / ``student=NAME`` for every built-in model name in
    Hydra's ConfigStore, so that whatever composes from this directory knows them.
    """
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            register_model_shortcuts(candidate)
            return candidate
    raise RuntimeError(f"distill's conf/ directory is missing (looked in {package} and {package.parent})")
