import math

import pytest
import torch

from distill.errors import DistillError
from distill.losses import DKD, StepOutputs


def _outputs() -> StepOutputs:
    # two classes make both parts easy to work out: the non-target softmax is over one class, so NCKD = 0
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])
    return StepOutputs(student=student, teacher=teacher, labels=torch.tensor([0]))


def _tckd_by_hand() -> float:
    # teacher [3/4, 1/4], student [1/2, 1/2] at T = 1
    return 0.75 * math.log(1.5) + 0.25 * math.log(0.5)


def test_compute_by_hand_after_warm_up():
    term = DKD(alpha=2.0, beta=8.0, temperature=1.0, warmup_epochs=0)
    assert term.compute(_outputs()).item() == pytest.approx(2.0 * _tckd_by_hand(), rel=1e-5)


def test_warm_up_is_linear_over_the_first_epochs():
    term = DKD(temperature=1.0, warmup_epochs=20)
    full = 1.0 * _tckd_by_hand()
    assert term.current_epoch == 0
    assert term.compute(_outputs()).item() == pytest.approx(full / 20, rel=1e-5)
    term.on_epoch_start(9)
    assert term.warmup_factor == pytest.approx(0.5)
    assert term.compute(_outputs()).item() == pytest.approx(full / 2, rel=1e-5)
    term.on_epoch_start(19)
    assert term.warmup_factor == 1.0
    term.on_epoch_start(100)
    assert term.warmup_factor == 1.0


def test_no_warm_up_when_warmup_epochs_is_zero():
    assert DKD(warmup_epochs=0).warmup_factor == 1.0


def test_flags():
    assert DKD.needs_labels and DKD.needs_teacher and DKD.compares_outputs


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weight": -1.0},
        {"temperature": 0.0},
        {"alpha": -1.0},
        {"beta": float("inf")},
        {"warmup_epochs": -1},
        {"warmup_epochs": 2.5},
    ],
)
def test_constructor_rejects_bad_values(kwargs):
    with pytest.raises(DistillError):
        DKD(**kwargs)


def test_missing_labels_are_reported():
    outputs = _outputs()
    outputs.labels = None
    with pytest.raises(DistillError, match="labels"):
        DKD().compute(outputs)
