import math

import pytest
import torch
from torch import nn

from distill import DistillationModule
from distill.errors import DistillError
from distill.losses import KD, FitNet
from distill.teachers import TeacherEnsemble


class Fixed(nn.Module):
    """A 'teacher' that returns fixed logits, whatever the input."""

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits, dtype=torch.float32))
        self.layer = nn.Identity()

    def forward(self, x):
        return self.layer(self.logits.expand(len(x), -1))


X = torch.zeros(2, 3)


def test_mean_is_the_weighted_mean_of_the_logits():
    ensemble = TeacherEnsemble({"a": Fixed([1.0, 2.0]), "b": Fixed([3.0, -2.0])}, combine="mean", weights=[3, 1])
    # weights normalised to 0.75, 0.25: 0.75*1 + 0.25*3 = 1.5, 0.75*2 + 0.25*(-2) = 1.0
    assert torch.allclose(ensemble(X), torch.tensor([[1.5, 1.0]] * 2))


def test_soft_gives_exactly_the_weighted_mean_of_the_soft_targets():
    T = 2.0
    ensemble = TeacherEnsemble(
        {"a": Fixed([2.0, 0.0]), "b": Fixed([0.0, 2.0])}, combine="soft", weights={"a": 1, "b": 3}, temperature=T
    )
    out = ensemble(X)[0]
    # softmax([2, 0] / 2) = [e/(e+1), 1/(e+1)] = [0.731059, 0.268941]; the other member's is reversed
    p_a = torch.tensor([math.e / (math.e + 1), 1 / (math.e + 1)])
    mixed = 0.25 * p_a + 0.75 * p_a.flip(0)  # [0.384470, 0.615530]
    assert torch.allclose(torch.softmax(out / T, dim=0), mixed, atol=1e-6)
    assert torch.allclose(torch.softmax(out / T, dim=0), torch.tensor([0.384470, 0.615530]), atol=1e-6)
    # the output is T * log(mixture): its exponent at 1/T is the mixture itself (it sums to 1)
    assert torch.allclose(out, T * torch.log(mixed), atol=1e-5)


def test_soft_stays_finite_for_sure_teachers():
    ensemble = TeacherEnsemble([Fixed([500.0, -500.0]), Fixed([-500.0, 500.0])], combine="soft")
    out = ensemble(X)
    assert torch.isfinite(out).all()
    assert torch.allclose(torch.softmax(out, dim=1), torch.full((2, 2), 0.5))


def test_concat_puts_members_side_by_side_and_records_their_columns():
    ensemble = TeacherEnsemble({"one": Fixed([1.0]), "two": Fixed([2.0, 3.0])}, combine="concat")
    assert torch.equal(ensemble(X), torch.tensor([[1.0, 2.0, 3.0]] * 2))
    assert ensemble.columns == {"one": slice(0, 1), "two": slice(1, 3)}


def test_layers_are_named_member_dot_layer_and_features_are_captured():
    torch.manual_seed(0)
    members = {"a": nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)),
               "b": nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))}
    ensemble = TeacherEnsemble(members)
    assert {"a.0", "a.2", "b.0", "b.2"} <= set(dict(ensemble.named_modules()))
    student = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    module = DistillationModule(
        student, ensemble, {"kd": KD(), "hint": FitNet(student_layer="0", teacher_layer="b.0")}
    )
    x = torch.randn(5, 3)
    module.build(x)
    outputs = module._run_models(x, with_teacher=True)
    assert torch.allclose(outputs.teacher_features["b.0"], members["b"][0](x))
    assert torch.allclose(outputs.teacher, (members["a"](x) + members["b"](x)) / 2, atol=1e-6)
    # frozen like any teacher: no gradients, eval mode, hashed with the members' weights and the weighting
    assert all(not p.requires_grad for p in ensemble.parameters()) and not ensemble.training
    assert any(k.startswith("a.0.") for k in ensemble.state_dict()) and "weights" in ensemble.state_dict()


def test_other_weights_make_another_teacher_hash():
    from distill.models import weights_sha256

    a, b = Fixed([1.0, 2.0]), Fixed([0.0, 1.0])
    assert weights_sha256(TeacherEnsemble({"a": a, "b": b}, weights=[1, 1])) != weights_sha256(
        TeacherEnsemble({"a": a, "b": b}, weights=[1, 2])
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"members": {}}, "at least one member"),
        ({"combine": "max"}, "combine must be one of mean, soft, concat, got 'max'"),
        ({"weights": [1.0]}, "1 weights for 2 members"),
        ({"weights": {"c": 1.0}}, "weights name unknown member(s) ['c']"),
        ({"weights": [1.0, -1.0]}, "weights must be finite, >= 0"),
        ({"temperature": 0}, "temperature must be a finite number > 0"),
        ({"members": {"forward": Fixed([1.0])}}, "'forward' cannot name a member"),
    ],
)
def test_bad_settings_are_one_clear_error(kwargs, message):
    options = {"members": {"a": Fixed([1.0, 2.0]), "b": Fixed([0.0, 1.0])}, **kwargs}
    with pytest.raises(DistillError, match=None) as error:
        TeacherEnsemble(**options)
    assert message in str(error.value)


def test_members_of_different_widths_need_concat():
    ensemble = TeacherEnsemble({"a": Fixed([1.0, 2.0]), "b": Fixed([1.0])}, combine="mean")
    with pytest.raises(DistillError, match="use combine=concat"):
        ensemble(X)
