"""The pip command that adds an optional extra, as the user installed distill: from a checkout or from a package."""

from __future__ import annotations

import os
from pathlib import Path


def source_checkout() -> Path | None:
    """The checkout distill runs from (its pyproject.toml beside the package), None for an installed package."""
    root = Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "distill"' in pyproject.read_text(encoding="utf-8", errors="replace"):
        return root
    return None


def install_command(extra: str, missing: list[str] | None = None) -> str:
    """``pip install -e ".[extra]"`` in a checkout (its path when elsewhere), else ``pip install 'distill[extra]'``.

    With exactly one ``missing`` package, that package alone: ``pip install onnxruntime``.
    """
    if missing is not None and len(missing) == 1:
        return f"pip install {missing[0]}"
    root = source_checkout()
    if root is None:
        return f"pip install 'distill[{extra}]'"
    where = "." if Path(os.getcwd()).resolve() == root else str(root)
    return f'pip install -e "{where}[{extra}]"'
