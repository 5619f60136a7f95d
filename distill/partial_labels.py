"""Partly-labelled and mixed-label batches: which samples a label term may read.

A sample without a label carries :data:`IGNORE_INDEX` (``-100``) as its class label, or a
row of ``-100`` as a soft target. Terms that read labels see only the labelled samples of a
batch; a term that handles the ignore value itself (``ignore_index = -100``, as
:class:`~distill.losses.CrossEntropy`) sees the whole batch. Mixed labels (mixup, cutmix) go
only to terms with ``accepts_soft_labels``; the others are skipped with a one-line warning.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

from torch import Tensor

#: the class label of a sample without one (as ``F.cross_entropy``'s default ``ignore_index``)
IGNORE_INDEX = -100


def labeled_mask(labels: Tensor, soft: bool) -> Tensor | None:
    """True for the samples that have a label; ``None`` for label forms without an ignore value."""
    if soft:
        return ~(labels == IGNORE_INDEX).all(dim=1)
    if labels.is_floating_point():
        return None  # 0/1 targets (masked BCE) mark missing entries their own way
    return labels != IGNORE_INDEX


def outputs_for_term(term, name: str, outputs, mixed_labels: bool = False):
    """The outputs term ``name`` should read, or ``None`` when it sits this step out."""
    if not term.needs_labels or outputs.labels is None:
        return outputs
    if mixed_labels and not getattr(term, "accepts_soft_labels", False):
        warnings.warn(
            f"loss term '{name}' ({type(term).__name__}) is not defined on mixed labels (mixup/cutmix): "
            "it is skipped in training steps; only cross-entropy takes mixed labels",
            stacklevel=3,
        )
        return None
    if getattr(term, "ignore_index", None) == IGNORE_INDEX:
        return outputs
    mask = labeled_mask(outputs.labels, mixed_labels)
    if mask is None or bool(mask.all()):
        return outputs
    if not bool(mask.any()):
        return None  # no labelled sample in this batch: the term contributes nothing
    return replace(
        outputs,
        student=outputs.student[mask],
        teacher=None if outputs.teacher is None else outputs.teacher[mask],
        labels=outputs.labels[mask],
        index=None if outputs.index is None else outputs.index[mask],
        student_features={k: v[mask] for k, v in outputs.student_features.items()},
        teacher_features={k: v[mask] for k, v in outputs.teacher_features.items()},
    )
