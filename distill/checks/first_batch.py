"""Checks of a first batch's outputs that catch model-pair and data mistakes with messages that name them."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch
from torch import Tensor

from distill.errors import DistillError
from distill.checks.model_pair import check_labels
from distill.partial_labels import IGNORE_INDEX
from distill.lm.predictions import is_token_output
from distill.losses.base import LossTerm, StepOutputs


def check_first_batch(outputs: StepOutputs, loss_terms: Mapping[str, LossTerm], class_dim: int) -> None:
    """Output shapes the terms compare, teacher outputs that look like probabilities, labels outside the classes."""
    student, teacher = outputs.student, outputs.teacher
    if teacher is not None and not isinstance(teacher, Tensor):
        teacher = None  # a sparse (top-k) teacher from a cache: its shape is checked by the token losses
    compares = [n for n, t in loss_terms.items() if t.compares_outputs]
    if teacher is not None and student.shape != teacher.shape and compares:
        raise DistillError(
            f"student output shape {tuple(student.shape)} does not match teacher output shape "
            f"{tuple(teacher.shape)} (needed by loss term(s) {', '.join(compares)}); "
            "build both models with the same number of classes"
        )
    if teacher is not None and looks_like_probabilities(teacher, class_dim):
        warnings.warn(
            "the teacher's outputs are non-negative and sum to 1 along the class dimension: "
            "they look like probabilities, but distill expects logits (remove the final softmax)",
            stacklevel=3,
        )
    labels = outputs.labels
    check_labels(loss_terms, labels, student, class_dim)
    tokens = is_token_output(student, labels)  # a causal LM: [B, T] token ids against a [B, T, V] vocabulary
    if labels is not None and not labels.is_floating_point():
        labels = labels[labels != IGNORE_INDEX]  # samples (or tokens) without a label
    if labels is not None and not labels.is_floating_point() and student.dim() >= 2 and labels.numel():
        num_classes = student.shape[-1 if tokens else class_dim]
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            raise DistillError(
                f"labels range from {low} to {high} but the student predicts {num_classes} "
                f"classes; build the models with num_classes={high + 1} or fix the labels"
            )


def looks_like_probabilities(outputs: Tensor, class_dim: int) -> bool:
    if outputs.dim() < 2 or outputs.shape[class_dim] < 2:
        return False
    outputs = outputs.detach().float()
    sums = outputs.sum(class_dim)
    return bool((outputs >= 0).all() and torch.allclose(sums, torch.ones_like(sums), atol=1e-3))
