"""What a run may continue from: a Lightning checkpoint of this student, of a run that is not finished."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from distill import DistillationModule
from distill.cli.resume_checks import epochs_completed, resume_checkpoint, sigterm_advice
from distill.errors import DistillError
from distill.losses import KD


def mlp(width=8):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 3))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished two-epoch run with its end-of-epoch checkpoints/last.ckpt, as the command writes it."""
    root = tmp_path_factory.mktemp("run")
    module = DistillationModule(mlp(), mlp(16), KD())
    loader = DataLoader(TensorDataset(torch.randn(16, 4), torch.randint(0, 3, (16,))), batch_size=8)
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=root / "checkpoints", filename="last", enable_version_counter=False)
    trainer = L.Trainer(max_epochs=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[checkpoint], accelerator="cpu", default_root_dir=root)
    trainer.fit(module, loader)
    return root


def cfg(**entries):
    return OmegaConf.create({"resume": False, "ckpt_path": None, "trainer": {"max_epochs": 5}, **entries})


def test_an_unfinished_run_resumes(run_dir):
    assert resume_checkpoint(cfg(resume=True), run_dir, mlp()) == run_dir / "checkpoints" / "last.ckpt"
    assert epochs_completed(torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)) == 2
    assert resume_checkpoint(cfg(), run_dir, mlp()) is None


@pytest.mark.parametrize("max_epochs", [1, 2])
def test_a_finished_run_says_it_is_finished(run_dir, max_epochs):
    before = (run_dir / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(DistillError) as raised:
        resume_checkpoint(cfg(resume=True, trainer={"max_epochs": max_epochs}), run_dir, mlp())
    text = str(raised.value)
    assert f"is a finished run (2 of trainer.max_epochs={max_epochs} epochs trained)" in text
    assert "nothing was changed" in text and "trainer.max_epochs=12" in text
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == before


def test_a_plain_state_dict_is_not_a_checkpoint_to_resume(run_dir, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(mlp().state_dict(), path)
    with pytest.raises(DistillError, match=f"ckpt_path={path}: {path} is not a Lightning checkpoint of a distill run"):
        resume_checkpoint(cfg(ckpt_path=str(path)), run_dir, mlp())
    torch.save([torch.ones(2)], path)
    with pytest.raises(DistillError, match="is not a Lightning checkpoint"):
        resume_checkpoint(cfg(ckpt_path=str(path)), run_dir, mlp())


@pytest.mark.parametrize("student, example", [
    (mlp(width=5), "0.weight"),  # same layers, other shapes
    (nn.Sequential(nn.Linear(4, 3)), "0.weight"),  # fewer layers
    (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)), "2.weight"),
])
def test_another_students_checkpoint_is_one_line(run_dir, student, example):
    with pytest.raises(DistillError) as raised:
        resume_checkpoint(cfg(ckpt_path=str(run_dir / "checkpoints" / "last.ckpt")), run_dir, student)
    text = str(raised.value)
    assert "was written for another student" in text and f"e.g. {example}" in text and "\n" not in text
    assert len(text) < 400


def test_an_unreadable_checkpoint_is_one_line(run_dir, tmp_path):
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(DistillError, match="cannot be read"):
        resume_checkpoint(cfg(ckpt_path=str(path)), run_dir, mlp())


def test_sigterm_advice_says_what_works(run_dir, tmp_path):
    assert "resume=true" in sigterm_advice(run_dir) and "continues from it exactly" in sigterm_advice(run_dir)
    advice = sigterm_advice(tmp_path)
    assert "nothing to resume" in advice and "without resume=true" in advice
