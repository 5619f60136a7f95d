"""Lightning data modules."""

from distill.data.digits import DigitsDataModule
from distill.data.tensor_dataset import TensorClassificationDataset

__all__ = ["DigitsDataModule", "TensorClassificationDataset"]
