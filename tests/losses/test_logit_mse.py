import pytest
import torch

from distill.losses import LogitMSE, StepOutputs


def test_logit_mse_by_hand():
    student = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    teacher = torch.tensor([[0.0, 0.0], [3.0, 1.0]])
    # squared errors 1, 4, 9, 1 -> mean 15 / 4
    assert LogitMSE().compute(StepOutputs(student=student, teacher=teacher)).item() == pytest.approx(3.75)


def test_logit_mse_works_on_any_output_shape():
    out = torch.ones(2, 3, 4)
    assert LogitMSE().compute(StepOutputs(student=out, teacher=out + 2)).item() == pytest.approx(4.0)


def test_logit_mse_shape_mismatch():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        LogitMSE().compute(StepOutputs(student=torch.zeros(2, 3), teacher=torch.zeros(2, 4)))
