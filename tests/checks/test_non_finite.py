"""NonFiniteLossGuard: at once on the CPU, deferred (one read-back) elsewhere, naming term, step and epoch."""

from __future__ import annotations

import pytest
import torch

from distill import DistillError
from distill.checks.non_finite import NonFiniteLossGuard

NAN, INF = float("nan"), float("inf")


def _values(kd: float, ce: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    values = {"kd": torch.tensor(kd), "ce": torch.tensor(ce)}
    return values, values["kd"] + values["ce"]


def test_immediate_check_raises_on_the_bad_step():
    guard = NonFiniteLossGuard(defer=False)
    guard.update(*_values(1.0, 2.0), step=0, epoch=0)
    with pytest.raises(DistillError, match=r"loss term\(s\) ce became non-finite at step 7 \(epoch 2\)"):
        guard.update(*_values(1.0, INF), step=7, epoch=2)


def test_cpu_tensors_are_checked_at_once_by_default():
    with pytest.raises(DistillError, match="kd became non-finite at step 3"):
        NonFiniteLossGuard().update(*_values(NAN, 0.5), step=3, epoch=0)


def test_deferred_check_names_the_first_bad_step_and_its_terms():
    guard = NonFiniteLossGuard(defer=True)
    guard.update(*_values(1.0, 2.0), step=0, epoch=0)
    guard.raise_if_seen()  # nothing seen yet
    guard.update(*_values(1.0, 2.0), step=1, epoch=0)
    guard.update(*_values(NAN, 2.0), step=2, epoch=1)  # the first bad step: kd alone
    guard.update(*_values(NAN, NAN), step=3, epoch=1)  # later steps do not overwrite it
    with pytest.raises(DistillError, match=r"loss term\(s\) kd became non-finite at step 2 \(epoch 1\)"):
        guard.raise_if_seen()
    guard.raise_if_seen()  # reported once


def test_deferred_check_of_a_bad_first_step_and_of_the_total_alone():
    guard = NonFiniteLossGuard(defer=True)
    guard.update(*_values(INF, NAN), step=0, epoch=0)
    with pytest.raises(DistillError, match=r"kd, ce became non-finite at step 0 \(epoch 0\)"):
        guard.raise_if_seen()
    # finite terms whose weighted sum overflows
    guard.update({"kd": torch.tensor(3e38)}, torch.tensor(3e38) * 10, step=5, epoch=0)
    with pytest.raises(DistillError, match="total became non-finite at step 5"):
        guard.raise_if_seen()
