"""distill: knowledge distillation on PyTorch Lightning and Hydra.

>>> from distill import DistillationModule
>>> from distill.losses import KD, CrossEntropy
"""

from typing import Any

from distill.errors import DistillError

__version__ = "0.1.0"

__all__ = ["DistillError", "DistillationModule", "__version__"]


def __getattr__(name: str) -> Any:
    # imported on first use, so small tools (python -m distill.layers) start without Lightning
    if name == "DistillationModule":
        from distill.module import DistillationModule

        return DistillationModule
    raise AttributeError(f"module 'distill' has no attribute {name!r}")
