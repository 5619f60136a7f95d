"""Where the commands find ``conf/`` (in the wheel or beside the checkout), and the model-name options with it."""

from __future__ import annotations

from pathlib import Path


def config_files() -> Path:
    """``conf/`` inside the installed package (wheel), else beside it (source checkout); nothing registered, no Hydra."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise RuntimeError(f"distill's conf/ directory is missing (looked in {package} and {package.parent})")


def config_dir() -> Path:
    """:func:`config_files`, with ``teacher=NAME`` / ``student=NAME`` registered for every built-in model name in
    Hydra's ConfigStore, so that whatever composes from this directory knows them."""
    from distill.cli.model_shortcuts import register_model_shortcuts  # imports Hydra: only where configs are composed

    conf = config_files()
    register_model_shortcuts(conf)
    return conf
