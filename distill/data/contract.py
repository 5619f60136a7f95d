"""The data-module contract the run relies on, as ``typing.Protocol`` classes the run checks with ``isinstance``.

A plain ``LightningDataModule`` with ``num_classes`` trains; what more the run reads of a data module, and
when, is named here, so that a module without it is either served as it is or gets one line saying what to add.
:class:`~distill.data.base.DistillDataModule` (every built-in data module) follows all of it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch.utils.data import DataLoader

from distill.errors import DistillError

BASE = "distill.data.base.DistillDataModule"


@runtime_checkable
class IndexableData(Protocol):
    """A data module whose batches can carry each sample's index (for loss terms that read it, and the cache).

    The run switches ``with_index`` on when a loss term reads indices. A data module without it is taken to
    yield ``(x, y, index)`` batches itself; if it does not, the term that reads them says so at its first step.
    """

    #: also yield each sample's index within its split (the run sets it to true when a term reads indices)
    with_index: bool


@runtime_checkable
class DeclaresAugmentation(Protocol):
    """A data module that says whether its training batches get random transforms."""

    #: train batches get random transforms, so outputs computed once would go stale
    random_augmentation: bool


@runtime_checkable
class CacheableData(DeclaresAugmentation, Protocol):
    """What the run needs of a data module to cache the teacher's outputs on its training split."""

    def cache_dataloader(self) -> DataLoader:
        """The training split in a fixed order, under the evaluation transform, with sample indices."""

    def fingerprint(self) -> dict[str, Any]:
        """A JSON-able description of what determines the training inputs (the cache's key)."""


def check_cacheable(datamodule: Any) -> CacheableData:
    """``datamodule`` as :class:`CacheableData`, or the one-line error that says why the teacher-output cache cannot serve it."""
    if isinstance(datamodule, DeclaresAugmentation) and datamodule.random_augmentation:
        raise DistillError(
            "teacher.cache=true needs the teacher to see the same training inputs every epoch, but the data "
            "module applies random augmentation; set data.augment=false or teacher.cache=false"
        )
    if not isinstance(datamodule, CacheableData):
        missing = next(
            shown for name, shown in (("random_augmentation", "a random_augmentation flag"),
                                      ("cache_dataloader", "cache_dataloader()"), ("fingerprint", "fingerprint()"))
            if not hasattr(datamodule, name)
        )
        raise DistillError(
            f"teacher.cache=true needs the data module to have {missing} "
            f"({type(datamodule).__name__} has not); set teacher.cache=false or derive it from {BASE}"
        )
    return datamodule
