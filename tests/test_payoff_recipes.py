"""The MNIST-1D recipes and the augment group compose into working objects (no training here)."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from distill.augment import Compose, CutMix, Mixup, OneOf, RandomCropFlip
from distill.data.mnist1d import MNIST1DDataModule, MNIST1DGenerated
from distill.data.unlabeled import HiddenLabels
from distill.run import config_dir


def composed(*overrides):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize("experiment", ["mnist1d_kd", "mnist1d_mixup", "mnist1d_unlabeled", "mnist1d_label_scarce",
                                        "patient_consistent"])
def test_every_mnist1d_recipe_builds_its_data_loss_optimizer_and_augmentation(experiment):
    cfg = composed(f"experiment={experiment}")
    assert (cfg.teacher.name, cfg.student.name) == ("mnist1d_cnn", "mnist1d_mlp")
    data = instantiate(cfg.data)
    assert isinstance(data, MNIST1DDataModule)
    instantiate(cfg.optimizer)([__import__("torch").nn.Parameter(__import__("torch").zeros(1))])  # AdamW, no momentum
    instantiate(cfg.teacher.train.optimizer)([__import__("torch").nn.Parameter(__import__("torch").zeros(1))])
    loss = {k: instantiate(v) for k, v in cfg.loss.items() if v is not None}
    augment = instantiate(cfg.augment).for_classes(10) if cfg.get("augment") else None
    if experiment == "mnist1d_unlabeled":
        assert isinstance(data.unlabeled, MNIST1DGenerated) and data.unlabeled_fraction == 0.5
    if experiment == "mnist1d_label_scarce":
        assert isinstance(data.unlabeled, HiddenLabels) and data.unlabeled.labeled_fraction == 0.1
    if experiment == "mnist1d_mixup":
        assert isinstance(augment, Mixup) and augment.num_classes == 10
    if experiment == "patient_consistent":
        assert set(loss) == {"kd"} and cfg.trainer.max_epochs >= 1000
        assert isinstance(augment, Compose) and isinstance(augment.steps[0], RandomCropFlip)
        assert isinstance(augment.steps[1], OneOf) and augment.mixes_labels


@pytest.mark.parametrize("name, kind", [("mixup", Mixup), ("cutmix", CutMix), ("crop_flip", RandomCropFlip)])
def test_the_augment_group_names_what_a_user_would_guess(name, kind):
    assert isinstance(instantiate(composed(f"augment={name}").augment), kind)
    assert composed().get("augment") is None  # off by default


def test_quick_uses_a_pair_that_learns_in_two_epochs():
    cfg = composed("experiment=quick")
    assert (cfg.teacher.name, cfg.student.name) == ("resnet14", "resnet8")
    assert cfg.trainer.max_epochs == cfg.teacher.train.epochs == 2 and cfg.optimizer.lr == 0.05


@pytest.mark.slow  # a whole smoke run: teacher and student trained, both tested (1-2 min on a quiet 2-core CPU)
def test_the_quick_smoke_run_ends_with_a_student_well_above_chance(tmp_path):
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "distill.run", "experiment=quick", "trainer.enable_progress_bar=false",
         f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=1800, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    # chance on digits is 10 %; the previous quick pair ended there
    assert summary["student"]["test_accuracy"] > 0.5
    assert summary["teacher"]["test_accuracy"] > 0.5
