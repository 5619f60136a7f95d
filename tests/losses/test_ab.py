"""AB: connectors and the activation-boundary margin loss, deeper layers weighted more."""

from __future__ import annotations

import pytest
import torch

from distill.errors import DistillError
from distill.losses import AB, StepOutputs
from distill.losses.functional import ab_loss


def test_flags_and_settings():
    term = AB(["layer1", "layer2", "layer3"])
    assert term.needs_build and term.layer_weights() == [0.25, 0.5, 1.0]
    with pytest.raises(DistillError, match="margin"):
        AB("a", margin=-1)


def test_trains_connectors_and_student_not_teacher(make_cnn, two_training_steps):
    module, _ = two_training_steps(AB(["2", "3"], weight=0.003), make_cnn, "ab")
    connectors = module.loss_terms["ab"].connectors
    assert [type(m).__name__ for m in connectors[0]] == ["Conv2d", "BatchNorm2d"]


def test_value_by_hand_with_a_connector_that_pools():
    torch.manual_seed(0)
    s1, s2 = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2)
    t1, t2 = torch.randn(2, 5, 2, 2), torch.randn(2, 6, 2, 2)
    outputs = StepOutputs(
        student=torch.zeros(2, 2), student_features={"a": s1, "b": s2}, teacher_features={"x": t1, "y": t2}
    )
    term = AB(["a", "b"], ["x", "y"], margin=0.5)
    term.build(outputs)
    first, second = term.connectors
    assert type(first[0]).__name__ == "AdaptiveAvgPool2d" and len(second) == 2
    pooled = s1.reshape(2, 3, 2, 2, 2, 2).mean(dim=(3, 5))
    expected = 0.5 * ab_loss(first[2](first[1](pooled)), t1, 0.5) + 1.0 * ab_loss(second(s2), t2, 0.5)
    assert term.compute(outputs).item() == pytest.approx(expected.item(), rel=1e-5)
