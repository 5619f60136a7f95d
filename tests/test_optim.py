"""distill.optim: what configure_optimizers hands Lightning."""

import pytest
from torch import nn

from distill import DistillationModule
from distill.errors import DistillError
from distill.losses import KD
from distill.optim import configure_optimizers


def test_the_optimizer_holds_every_trainable_parameter_and_nothing_frozen():
    student, teacher = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3)), nn.Linear(4, 3)
    student[0].requires_grad_(False)
    module = DistillationModule(student, teacher, {"kd": KD()})
    optimizer = configure_optimizers(module, None, None)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert held == {id(student[1].weight), id(student[1].bias)}


def test_a_student_with_nothing_to_train_is_one_line():
    module = DistillationModule(nn.Linear(4, 3).requires_grad_(False), nn.Linear(4, 3), {"kd": KD()})
    with pytest.raises(DistillError, match="nothing to train: every parameter of the student") as error:
        module.configure_optimizers()  # torch would say "optimizer got an empty parameter list"
    assert "\n" not in str(error.value)
