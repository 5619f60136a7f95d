"""Per-sample view of the test set: each sample's predictions and loss-term values, for finding hard cases."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from lightning.pytorch.utilities import move_data_to_device
from torch import Tensor

from distill.batch import forward_logits, split_batch
from distill.errors import DistillError
from distill.io import atomic_write_text
from distill.losses.base import StepOutputs

if TYPE_CHECKING:
    from distill.module import DistillationModule


def _per_sample(values: Tensor) -> Tensor:
    """Average per-position values over every dimension but the batch's."""
    return values.reshape(len(values), -1).mean(dim=1) if values.dim() > 1 else values


def _term_values(term: Any, outputs: StepOutputs) -> Tensor | None:
    """One unweighted value per sample of a loss term, or ``None`` when it has no per-sample form."""
    values = term.per_sample(outputs)
    return None if values is None else _per_sample(values)


def per_sample_losses(module: DistillationModule, dataloader: Any) -> dict[str, Tensor]:
    """Run the student and teacher of ``module`` over ``dataloader`` and return one value per sample.

    Batches are processed whole (no per-sample Python loop), in eval mode under
    ``torch.no_grad()``, on the module's device; the results are on the CPU.

    Returned columns (each a tensor of length N, in loader order):

    - ``index``: the batch's sample index when it has one, else the running position;
    - ``label``: the class label (only when the batches have labels);
    - ``student_pred``, ``teacher_pred``: arg-max over the class dimension
      (``module.class_dim``); the models must output ``[batch, classes]`` logits;
    - ``disagreement``: 1 where the two arg-maxes differ, else 0;
    - ``loss/<name>``: the unweighted value of loss term ``<name>`` for the sample.

    Per-sample values come from each term's :meth:`~distill.losses.LossTerm.per_sample`
    (KD, CrossEntropy, LogitMSE, ReverseKL, JSD, TVD, SoftTargetCE, BCEKD,
    CosineEmbedding), averaged over any non-batch dimensions; terms that compare
    samples with each other (DIST, RKD, CRD, ...) or read features have none and
    are left out. The mean of a column equals the term's value on the whole
    set, except for CrossEntropy with ``class_weights``, whose batch value is
    the mean weighted by the labels' class weights, ``sum(w[y] * ce) / sum(w[y])``,
    while the column holds ``w[y] * ce``.
    """
    device = module.device
    student, teacher = module.student, module.teacher
    modes = (student.training, teacher.training)
    student.eval()
    teacher.eval()
    columns: dict[str, list[Tensor]] = {}
    position = 0
    has_labels: bool | None = None
    try:
        with torch.no_grad():
            for batch in dataloader:
                parts = split_batch(move_data_to_device(batch, device))
                s_logits = forward_logits(student, parts)
                t_logits = forward_logits(teacher, parts)
                size = len(s_logits)
                if has_labels is None:
                    has_labels = parts.labels is not None
                elif has_labels != (parts.labels is not None):
                    raise DistillError(
                        "per_sample_losses: some batches have labels and some do not; "
                        "give labels with every batch or with none"
                    )
                index = parts.index if parts.index is not None else torch.arange(position, position + size)
                position += size
                if s_logits.dim() != 2 or t_logits.dim() != 2:
                    raise DistillError(
                        f"per_sample_losses: expects classifier logits of shape [batch, classes], got student "
                        f"{tuple(s_logits.shape)} and teacher {tuple(t_logits.shape)}"
                    )
                s_pred, t_pred = s_logits.argmax(module.class_dim), t_logits.argmax(module.class_dim)
                row = {
                    "index": index.reshape(size),
                    "student_pred": s_pred,
                    "teacher_pred": t_pred,
                    "disagreement": (s_pred != t_pred).long(),
                }
                if parts.labels is not None:
                    row["label"] = parts.labels
                outputs = StepOutputs(student=s_logits, teacher=t_logits, labels=parts.labels, index=parts.index)
                for name, term in module.loss_terms.items():
                    values = _term_values(term, outputs)
                    if values is not None:
                        row[f"loss/{name}"] = values
                for key, value in row.items():
                    columns.setdefault(key, []).append(value.detach().cpu())
    finally:
        student.train(modes[0])
        teacher.train(modes[1])
        module.discard_captured_features()  # drop the activations the feature hooks kept from the last batch
    if not columns:
        raise DistillError("per_sample_losses: the data loader yielded no batches")
    order = ["index", "label", "student_pred", "teacher_pred", "disagreement"]
    keys = [k for k in order if k in columns] + [k for k in columns if k not in order]
    return {key: torch.cat(columns[key]) for key in keys}


def write_per_sample_csv(values: dict[str, Tensor], path: str | Path) -> Path:
    """Write the columns of :func:`per_sample_losses` as a CSV file (one row per sample), atomically."""
    if not values:
        raise DistillError("write_per_sample_csv: no columns to write")
    lengths = {key: len(column) for key, column in values.items()}
    if len(set(lengths.values())) != 1:
        raise DistillError(f"write_per_sample_csv: columns differ in length: {lengths}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(values)
    writer.writerows(zip(*(column.tolist() for column in values.values())))
    return atomic_write_text(path, buffer.getvalue())
