"""The two warnings Lightning raises that a distill user can do nothing about, ignored by their exact message.

- ``DistillationModule`` overrides ``on_before_batch_transfer`` on purpose (it looks up cached
  teacher rows while the sample indices are still on the host); Lightning warns whenever such a
  module is trained on a ``LightningDataModule``, which is every distill run.
- Lightning's own deprecation notice about a torch internal (``isinstance(treespec, LeafSpec)``),
  printed from inside its loops with this torch.

Imported by the modules that Lightning trains (:mod:`distill.module`, :mod:`distill.supervised`),
so the Python API is as quiet as the commands; every other warning still comes through.
"""

from __future__ import annotations

import warnings

OWN_MODULE_WARNING = r"You have overridden `on_before_batch_transfer` in `LightningModule` but have passed in a `LightningDataModule`"
LEAF_SPEC_WARNING = r".*isinstance\(treespec, LeafSpec\)"


def ignore_lightning_noise() -> None:
    """Install the two filters (idempotent: ``warnings`` keeps one copy of an identical filter)."""
    for message in (OWN_MODULE_WARNING, LEAF_SPEC_WARNING):
        warnings.filterwarnings("ignore", message=message)
