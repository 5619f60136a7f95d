"""Per-sample predictions and loss values: their means equal the terms' values on the whole set."""

from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from distill.data.tensor_dataset import TensorClassificationDataset
from distill.errors import DistillError
from distill.losses import (
    BCEKD,
    DIST,
    JSD,
    KD,
    TVD,
    CosineEmbedding,
    CrossEntropy,
    LogitMSE,
    ReverseKL,
    SoftTargetCE,
    StepOutputs,
)
from distill.module import DistillationModule
from distill.report.per_sample import per_sample_losses, write_per_sample_csv


@pytest.fixture
def data():
    torch.manual_seed(0)
    return torch.randn(50, 1, 8, 8), torch.randint(0, 10, (50,))


@pytest.fixture
def module(make_cnn):
    torch.manual_seed(1)
    student, teacher = make_cnn(width=4), make_cnn(width=8)
    loss = {
        "kd": KD(temperature=4.0, weight=0.9),
        "ce": CrossEntropy(weight=0.1, label_smoothing=0.1),
        "mse": LogitMSE(weight=0.5),
        "dist": DIST(),  # compares whole batches: no per-sample value
    }
    return DistillationModule(student, teacher, loss)


def whole_set_outputs(module, x, y):
    module.student.eval()
    with torch.no_grad():
        return StepOutputs(student=module.student(x), teacher=module.teacher(x), labels=y)


def test_per_sample_means_equal_the_terms_on_the_whole_set(module, data):
    x, y = data
    values = per_sample_losses(module, DataLoader(TensorDataset(x, y), batch_size=16))  # 16+16+16+2
    assert list(values) == [
        "index", "label", "student_pred", "teacher_pred", "disagreement", "loss/kd", "loss/ce", "loss/mse",
    ]
    assert all(len(column) == 50 for column in values.values())
    outputs = whole_set_outputs(module, x, y)
    for name in ("kd", "ce", "mse"):
        expected = module.loss_terms[name](outputs)
        assert values[f"loss/{name}"].mean().item() == pytest.approx(expected.item(), rel=1e-5), name
    assert torch.equal(values["index"], torch.arange(50))
    assert torch.equal(values["label"], y)
    assert torch.equal(values["student_pred"], outputs.student.argmax(1))
    assert torch.equal(values["teacher_pred"], outputs.teacher.argmax(1))
    assert torch.equal(values["disagreement"], (outputs.student.argmax(1) != outputs.teacher.argmax(1)).long())
    assert values["disagreement"].float().mean().item() == pytest.approx(
        1 - (outputs.student.argmax(1) == outputs.teacher.argmax(1)).float().mean().item()
    )


def test_per_sample_kd_is_the_hand_formula(module, data):
    x, y = data
    values = per_sample_losses(module, DataLoader(TensorDataset(x, y), batch_size=16))
    outputs = whole_set_outputs(module, x, y)
    # T² · KL(softmax(t/T) || softmax(s/T)) per sample, in float64
    log_q = F.log_softmax(outputs.student.double() / 4.0, dim=1)
    log_p = F.log_softmax(outputs.teacher.double() / 4.0, dim=1)
    expected = (log_p.exp() * (log_p - log_q)).sum(1) * 16.0
    # kd_loss works in float32: its KL of nearby distributions carries ~1e-7 · |log p| · T² rounding
    assert torch.allclose(values["loss/kd"].double(), expected, rtol=0, atol=2e-5)
    assert expected.min() > 1e-3  # the tolerance is small next to the values


def test_module_and_models_are_left_as_they_were(module, data):
    x, y = data
    module.train()
    before = {k: v.clone() for k, v in module.student.state_dict().items()}
    per_sample_losses(module, DataLoader(TensorDataset(x, y), batch_size=16))
    assert module.student.training and not module.teacher.training
    after = module.student.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics untouched


def test_class_weighted_cross_entropy_column(make_cnn, data):
    x, y = data
    weights = torch.linspace(0.5, 2.0, 10)
    module = DistillationModule(make_cnn(width=4), make_cnn(width=4), {"ce": CrossEntropy(class_weights=weights.tolist())})
    values = per_sample_losses(module, DataLoader(TensorDataset(x, y), batch_size=16))
    term_value = module.loss_terms["ce"](whole_set_outputs(module, x, y))
    # the column holds w[y] * ce; the term is the weighted mean sum(w[y] * ce) / sum(w[y]), not its plain mean
    assert values["loss/ce"].sum().item() / weights[y].sum().item() == pytest.approx(term_value.item(), rel=1e-5)
    assert values["loss/ce"].mean().item() != pytest.approx(term_value.item(), rel=1e-3)


def test_sample_indices_from_the_batch_and_unlabelled_data(module, data):
    x, y = data
    order = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    dataset = TensorClassificationDataset(x, y, with_index=True)
    loader = DataLoader(torch.utils.data.Subset(dataset, order.tolist()), batch_size=16)
    values = per_sample_losses(module, loader)
    assert torch.equal(values["index"], order)
    assert torch.equal(values["label"], y[order])

    unlabelled = per_sample_losses(module, DataLoader(TensorDataset(x), batch_size=16))
    assert "label" not in unlabelled and "loss/ce" not in unlabelled  # CE needs labels
    assert torch.allclose(unlabelled["loss/kd"], values["loss/kd"][order.argsort()], atol=1e-6)


def test_write_per_sample_csv(module, data, tmp_path):
    x, y = data
    values = per_sample_losses(module, DataLoader(TensorDataset(x, y), batch_size=16))
    path = write_per_sample_csv(values, tmp_path / "out" / "per_sample.csv")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 50 and list(rows[0]) == list(values)
    assert int(rows[7]["label"]) == int(y[7])
    assert float(rows[7]["loss/kd"]) == pytest.approx(values["loss/kd"][7].item())
    with pytest.raises(DistillError, match="differ in length"):
        write_per_sample_csv({"a": torch.zeros(2), "b": torch.zeros(3)}, tmp_path / "bad.csv")


@pytest.mark.parametrize(
    "make",
    [
        lambda: KD(temperature=2.0),
        lambda: ReverseKL(temperature=2.0),
        lambda: JSD(beta=0.3, temperature=2.0),
        lambda: TVD(temperature=2.0),
        lambda: SoftTargetCE(temperature=2.0),
        lambda: BCEKD(temperature=2.0),
        lambda: CosineEmbedding(),
        lambda: LogitMSE(),
        lambda: CrossEntropy(label_smoothing=0.1),
    ],
)
def test_every_per_sample_form_averages_to_the_terms_value(make):
    torch.manual_seed(0)
    outputs = StepOutputs(student=torch.randn(6, 5), teacher=torch.randn(6, 5) * 2, labels=torch.randint(0, 5, (6,)))
    term = make()
    values = term.per_sample(outputs)
    assert values.shape[0] == 6
    assert values.reshape(6, -1).mean(1).mean().item() == pytest.approx(term.compute(outputs).item(), rel=1e-5)


def test_relational_terms_have_no_per_sample_form():
    outputs = StepOutputs(student=torch.randn(4, 3), teacher=torch.randn(4, 3))
    assert DIST().per_sample(outputs) is None
