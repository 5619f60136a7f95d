"""distill: knowledge distillation on PyTorch Lightning and Hydra.

>>> from distill import DistillationModule
>>> from distill.losses import KD, CrossEntropy
"""

from distill.errors import DistillError
from distill.module import DistillationModule

__version__ = "0.1.0"

__all__ = ["DistillError", "DistillationModule", "__version__"]
