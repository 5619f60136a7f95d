"""Lightning data modules."""

from distill.data.base import ClassificationDataModule
from distill.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from distill.data.digit_heads import DigitHeadsDataModule
from distill.data.digits import DigitsDataModule
from distill.data.image_folder import ImageFolderDataModule
from distill.data.indexed import IndexedDataset, batch_item
from distill.data.lm_text import LanguageModelDataModule
from distill.data.tensor_dataset import TensorClassificationDataset
from distill.data.text import TextClassificationDataModule

__all__ = [
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "ClassificationDataModule",
    "DigitHeadsDataModule",
    "DigitsDataModule",
    "ImageFolderDataModule",
    "IndexedDataset",
    "LanguageModelDataModule",
    "TensorClassificationDataset",
    "TextClassificationDataModule",
    "batch_item",
]
