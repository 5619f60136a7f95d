"""Batch augmentations seen by both models: the teacher's targets on the student's exact view."""

from distill.augment.batch_views import BatchAugment
from distill.augment.compose import Compose, OneOf
from distill.augment.crop_flip import RandomCropFlip
from distill.augment.cutmix import CutMix
from distill.augment.mixup import Mixup

__all__ = ["BatchAugment", "Compose", "CutMix", "Mixup", "OneOf", "RandomCropFlip"]
