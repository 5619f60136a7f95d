"""Gradient diagnostics: per-sample gradient variance against a loop over samples, cosines and norm ratios by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from distill import DistillationModule, DistillError
from distill.diagnostics import GradientStatistics, per_sample_gradient_variance
from distill.losses import KD, CrossEntropy, RKD


def _flat(grads, params) -> torch.Tensor:
    # a parameter a term does not reach (RKD on a hidden layer never sees the last Linear) has gradient 0
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


def _loop_variance(losses: torch.Tensor, params: list[torch.Tensor]) -> float:
    """sum over parameters of the unbiased variance of the per-sample gradients, one backward per sample."""
    grads = []
    for value in losses:
        g = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        grads.append(_flat(g, params).double())
    stacked = torch.stack(grads)
    return float(((stacked - stacked.mean(0)) ** 2).sum() / (len(grads) - 1))


@pytest.mark.parametrize("chunk_size", [1, 3, 16])
def test_per_sample_variance_equals_a_loop_over_samples(chunk_size):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    x, y = torch.randn(7, 5), torch.randint(0, 3, (7,))
    losses = nn.functional.cross_entropy(model(x), y, reduction="none")
    params = list(model.parameters())
    got = per_sample_gradient_variance(losses, params, chunk_size=chunk_size)
    assert got.item() == pytest.approx(_loop_variance(losses, params), rel=1e-5)


def test_identical_samples_have_zero_variance():
    model = nn.Linear(3, 2)
    x = torch.ones(4, 3)
    losses = model(x).pow(2).sum(1)
    assert per_sample_gradient_variance(losses, list(model.parameters())).item() == pytest.approx(0.0, abs=1e-9)


def _module_after_one_step(make_cnn):
    torch.manual_seed(0)
    student = make_cnn()
    terms = {"kd": KD(2.0, weight=0.5), "ce": CrossEntropy(weight=2.0), "rkd": RKD("4")}
    module = DistillationModule(student, make_cnn(), terms)
    module.record_steps = True
    batch = (torch.randn(6, 1, 8, 8), torch.randint(0, 10, (6,)))
    module.training_step(batch, 0)
    return module, student, batch


def test_statistics_of_a_step_match_loops_and_hand_formulas(make_cnn):
    module, student, batch = _module_after_one_step(make_cnn)
    stats = GradientStatistics(every_n_steps=1).measure(module)
    params = [p for p in student.parameters() if p.requires_grad]
    outputs, _ = module.last_step

    # variance: weighted per-sample values, one backward each; RKD compares samples with each other: none
    assert "train/grad_var/rkd" not in stats
    for name, weight in (("kd", 0.5), ("ce", 2.0)):
        per_sample = module.loss_terms[name].per_sample(outputs) * weight
        assert stats[f"train/grad_var/{name}"].item() == pytest.approx(_loop_variance(per_sample, params), rel=1e-4)

    def full(name, weight):
        g = torch.autograd.grad(weight * module.loss_terms[name](outputs), params, retain_graph=True, allow_unused=True)
        return _flat(g, params)

    g = {"kd": full("kd", 0.5), "ce": full("ce", 2.0), "rkd": full("rkd", 1.0)}
    for a, b in (("kd", "ce"), ("kd", "rkd"), ("ce", "rkd")):
        cosine = float(g[a] @ g[b] / (g[a].norm() * g[b].norm()))
        assert stats[f"train/grad_cos/{a}__{b}"].item() == pytest.approx(cosine, rel=1e-4, abs=1e-6)
        assert stats[f"train/grad_ratio/{a}__{b}"].item() == pytest.approx(float(g[a].norm() / g[b].norm()), rel=1e-4)


def test_every_n_steps_under_a_real_fit_logs_only_on_those_steps(make_cnn, fast_trainer, tmp_path):
    import csv

    from lightning.pytorch.loggers import CSVLogger

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(48, 1, 8, 8), torch.randint(0, 10, (48,)))
    module = DistillationModule(make_cnn(), make_cnn(), {"kd": KD(), "ce": CrossEntropy()})
    trainer = fast_trainer(
        max_epochs=1, logger=CSVLogger(tmp_path, name="d"), log_every_n_steps=1,
        callbacks=[GradientStatistics(every_n_steps=2)],
    )
    trainer.fit(module, train_dataloaders=DataLoader(data, batch_size=8))  # 6 steps: 0, 2, 4 measured
    rows = list(csv.DictReader((tmp_path / "d" / "version_0" / "metrics.csv").open()))
    measured = [int(r["step"]) for r in rows if r.get("train/grad_var/kd")]
    assert measured == [0, 2, 4]
    assert all(r["train/grad_cos/kd__ce"] and r["train/grad_ratio/kd__ce"] for r in rows if r.get("train/grad_var/kd"))
    assert module.last_step is None


def test_off_by_default_and_bad_settings_are_one_line_errors():
    assert GradientStatistics().every_n_steps == 0
    with pytest.raises(DistillError, match="every_n_steps must be a whole number >= 0"):
        GradientStatistics(every_n_steps=-1)
    with pytest.raises(DistillError, match="chunk_size must be a whole number >= 1"):
        GradientStatistics(chunk_size=0)


def test_the_run_config_builds_the_callback_from_one_switch():
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        default = compose("config")
        switched = compose("config", overrides=["diagnostics.gradients.every_n_steps=50"])
    # the run instantiates every entry of `callbacks`; this one is off unless asked for
    assert instantiate(default.callbacks.gradient_statistics).every_n_steps == 0
    callback = instantiate(switched.callbacks.gradient_statistics)
    assert isinstance(callback, GradientStatistics) and callback.every_n_steps == 50
