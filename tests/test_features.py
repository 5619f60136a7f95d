"""Feature-based loss terms inside DistillationModule: training, gradients, layer errors, configs."""

from __future__ import annotations

import copy
import math
from collections import OrderedDict

import pytest
import torch
from torch import nn

from distill import DistillationModule, DistillError
from distill.data import DigitsDataModule
from distill.features import layer_names, layer_pairs
from distill.losses import (
    PKT,
    RKD,
    ActivationPenalty,
    AttentionTransfer,
    CrossEntropy,
    FitNet,
    SimilarityPreserving,
)

# layers of conftest's tiny_cnn: "0" conv [B, w, 8, 8], "2" ReLU, "3" pool [B, w, 2, 2], "4" flatten [B, 4w]
TERMS = {
    "fitnet": lambda: FitNet("2", "2"),
    "attention_transfer": lambda: AttentionTransfer(["0", "2"], ["0", "2"], weight=100.0),
    "similarity_preserving": lambda: SimilarityPreserving("3", "3", weight=100.0),
    "rkd": lambda: RKD("4", "4"),
    "pkt": lambda: PKT("4", "4", weight=100.0),
    "activation_penalty": lambda: ActivationPenalty("2", weight=0.1),
}


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items())


@pytest.fixture
def pair(make_cnn):
    torch.manual_seed(0)
    return make_cnn(width=4), make_cnn(width=8)  # different widths: the adapters have work to do


@pytest.fixture
def batch():
    torch.manual_seed(1)
    return torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))


@pytest.mark.parametrize("name", sorted(TERMS))
def test_term_trains_student_and_adapters_never_the_teacher(name, pair, fast_trainer):
    student, teacher = pair
    module = DistillationModule(student, teacher, {name: TERMS[name](), "ce": CrossEntropy()})
    data = DigitsDataModule(batch_size=32, image_size=8, channels=1)
    data.setup("fit")
    module.build(next(iter(data.train_dataloader())))
    term = module.loss_terms[name]
    teacher_before, student_before, term_before = snapshot(teacher), snapshot(student), snapshot(term)

    trainer = fast_trainer(limit_train_batches=3, limit_val_batches=1, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=data)

    assert changed(student_before, student)
    if name == "fitnet":
        assert term_before and changed(term_before, term), "the adapter did not train"
    teacher_after = teacher.state_dict()
    assert teacher_after.keys() == teacher_before.keys()
    for key, value in teacher_before.items():  # BatchNorm running statistics included
        assert torch.equal(value, teacher_after[key]), key
    for stage in ("train", "val"):
        logged = trainer.callback_metrics[f"{stage}/loss/{name}"]
        assert math.isfinite(logged.item())
    optimised = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert optimised == {id(p) for p in student.parameters()} | {id(p) for p in term.parameters()}


@pytest.mark.parametrize("name", sorted(TERMS))
def test_gradients_reach_student_and_adapters_never_the_teacher(name, pair, batch):
    student, teacher = pair
    module = DistillationModule(student, teacher, {name: TERMS[name]()})
    module.build(batch)
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    for parameter in module.loss_terms[name].parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def test_fit_builds_the_adapters_and_checkpoints_hold_them(pair, fast_trainer, batch):
    student, teacher = pair
    module = DistillationModule(student, teacher, {"fitnet": FitNet(["2", "4"]), "ce": CrossEntropy()})
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*batch), batch_size=4)
    trainer = fast_trainer(limit_train_batches=1, limit_val_batches=0)
    trainer.fit(module, train_dataloaders=loader)

    adapters = module.loss_terms["fitnet"].adapters
    assert isinstance(adapters[0], nn.Sequential) and isinstance(adapters[1], nn.Linear)
    state = module.state_dict()
    assert "loss_terms.fitnet.adapters.1.weight" in state
    assert not any(key.startswith("teacher.") for key in state)

    terms = {"fitnet": FitNet(["2", "4"]), "ce": CrossEntropy()}
    fresh = DistillationModule(copy.deepcopy(student), copy.deepcopy(teacher), terms)
    fresh.build(batch)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.loss_terms["fitnet"].adapters[1].weight, adapters[1].weight)


def test_student_only_term_does_not_run_the_teacher(pair, batch):
    student, teacher = pair
    calls = []
    teacher.register_forward_hook(lambda *args: calls.append(1))
    module = DistillationModule(student, teacher, {"ap": ActivationPenalty("2"), "ce": CrossEntropy()})
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss) and calls == []


def test_features_come_from_the_same_forward_pass_as_the_logits(pair, batch):
    student, teacher = pair
    module = DistillationModule(student, teacher, {"at": AttentionTransfer("2")})
    outputs = module._run_models(batch, with_teacher=True)
    expected = torch.relu(student[1](student[0](batch[0])))
    assert torch.allclose(outputs.student_features["2"], expected)
    assert outputs.student_features["2"].requires_grad
    assert not outputs.teacher_features["2"].requires_grad


def named_cnn() -> nn.Module:
    return nn.Sequential(
        OrderedDict(
            features=nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            head=nn.Linear(4, 10),
        )
    )


def test_misspelt_layer_is_a_clear_error_with_the_nearest_names():
    with pytest.raises(DistillError, match=r"student has no layer 'featurs' \(did you mean features"):
        DistillationModule(named_cnn(), named_cnn(), {"fitnet": FitNet("featurs", "features")})
    with pytest.raises(DistillError, match=r"teacher has no layer 'haed' \(did you mean head"):
        DistillationModule(named_cnn(), named_cnn(), {"rkd": RKD("head", "haed")})


class WithUnusedLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        self.unused = nn.Linear(10, 10)  # registered but never called in forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_layer_never_called_in_forward_is_a_clear_error(batch):
    module = DistillationModule(WithUnusedLayer(), WithUnusedLayer(), {"pkt": PKT("unused")})
    with pytest.raises(DistillError, match="unused did not run in the forward pass"):
        module.training_step(batch, 0)
    module = DistillationModule(WithUnusedLayer(), WithUnusedLayer(), {"fitnet": FitNet("unused")})
    with pytest.raises(DistillError, match="unused did not run in the forward pass"):
        module.build(batch)


def test_layer_arguments():
    assert layer_names("layer3", "T", "student_layer") == ("layer3",)
    assert layer_names(["a", "b.0"], "T", "student_layer") == ("a", "b.0")
    assert layer_pairs("a", None, "T") == (("a",), ("a",))
    for bad in (None, [], [""], [3]):
        with pytest.raises(DistillError, match="T: student_layer must name a layer"):
            layer_names(bad, "T", "student_layer")


# -- the shipped configs on the default model pair (resnet50 teacher, resnet18 student) ----------

FEATURE_CONFIGS = {
    "fitnet": FitNet,
    "attention_transfer": AttentionTransfer,
    "similarity_preserving": SimilarityPreserving,
    "rkd": RKD,
    "pkt": PKT,
    "activation_penalty": ActivationPenalty,
}


@pytest.fixture(scope="module")
def default_pair():
    from distill.models import build_model

    torch.manual_seed(0)
    return build_model("resnet18", 10), build_model("resnet50", 10)


@pytest.mark.parametrize("name", sorted(FEATURE_CONFIGS))
def test_config_trains_the_default_pair(name, default_pair):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from distill.run import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[f"loss={name}"])
    assert (cfg.teacher.name, cfg.student.name) == ("resnet50", "resnet18")
    loss = {key: instantiate(node) for key, node in cfg.loss.items()}
    assert set(loss) == {name, "ce"}
    assert isinstance(loss[name], FEATURE_CONFIGS[name]) and isinstance(loss["ce"], CrossEntropy)
    assert loss["ce"].weight == 1.0

    student, teacher = default_pair
    module = DistillationModule(student, teacher, loss)
    try:
        torch.manual_seed(2)
        batch = (torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,)))
        module.build(batch)
        value = module.training_step(batch, 0)
        assert value.dim() == 0 and torch.isfinite(value)
    finally:  # the pair is shared by these tests: take this module's hooks off it again
        module.remove_hooks()
