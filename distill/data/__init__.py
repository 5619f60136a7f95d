"""Lightning data modules."""

from distill.data.digit_heads import DigitHeadsDataModule
from distill.data.digits import DigitsDataModule
from distill.data.tensor_dataset import TensorClassificationDataset

__all__ = ["DigitHeadsDataModule", "DigitsDataModule", "TensorClassificationDataset"]
