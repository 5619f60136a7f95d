"""Lightning data modules."""

from distill.data.digits import DigitsDataModule
from distill.data.tensor_dataset import TensorClassificationDataset
from distill.data.text import TextClassificationDataModule

__all__ = ["DigitsDataModule", "TensorClassificationDataset", "TextClassificationDataModule"]
