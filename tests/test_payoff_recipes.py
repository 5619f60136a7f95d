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
                                        "mnist1d_patient_consistent"])
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
    if experiment == "mnist1d_patient_consistent":
        assert set(loss) == {"kd"} and cfg.trainer.max_epochs >= 1000
        assert isinstance(augment, Compose) and isinstance(augment.steps[0], RandomCropFlip)
        assert isinstance(augment.steps[1], OneOf) and augment.mixes_labels


def test_patient_consistent_is_the_schedule_on_the_embedded_digits_with_the_default_pair():
    cfg = composed("experiment=patient_consistent")
    default = composed()
    assert cfg.data._target_ == default.data._target_ == "distill.data.DigitsDataModule"
    assert (cfg.teacher.name, cfg.student.name) == (default.teacher.name, default.student.name)
    loss = {k: instantiate(v) for k, v in cfg.loss.items() if v is not None}
    assert set(loss) == {"kd"} and loss["kd"].weight == 1.0  # KD only: no label term
    assert cfg.trainer.max_epochs >= 10 * default.trainer.max_epochs  # patient: trained long
    augment = instantiate(cfg.augment).for_classes(10)
    assert isinstance(augment.steps[0], RandomCropFlip) and not augment.steps[0].flip  # digits are not mirrored
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


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["experiment=mnist1d_mixup", "teacher.cache=true"], "teacher.cache=true reads the teacher's outputs on the un-augmented"),
        (["experiment=mnist1d_unlabeled", "teacher.cache=true"], "data.unlabeled cannot be combined with sample indices"),
        (["experiment=mnist1d_label_scarce", "loss=crd"], "data.unlabeled cannot be combined with sample indices"),
    ],
)
def test_the_teacher_output_cache_and_index_terms_are_refused_with_views_or_a_pool_before_the_teacher_exists(
    overrides, message
):
    from distill.cli.teachers import check_sample_indices_first
    from distill.cli.training import loss_terms
    from distill.errors import DistillError

    cfg = composed(*overrides)
    with pytest.raises(DistillError, match=message):
        check_sample_indices_first(cfg, instantiate(cfg.data), loss_terms(cfg.loss))
    plain = composed("experiment=mnist1d_kd", "teacher.cache=true")  # no views, no pool: the cache is fine
    check_sample_indices_first(plain, instantiate(plain.data), loss_terms(plain.loss))


def test_the_cache_with_mixup_fails_on_the_command_line_before_the_teacher_trains(tmp_path):
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "distill.run", "experiment=mnist1d_mixup", "teacher.cache=true",
         f"hydra.run.dir={tmp_path / 'run'}"],
        env={**os.environ, "DISTILL_CACHE_DIR": str(tmp_path / "cache")}, cwd=tmp_path,
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "error: teacher.cache=true reads the teacher's outputs on the un-augmented training inputs, but batch "
        "augmentation gives both models new views every step; set teacher.cache=false or augment=null"
    )
    assert not (tmp_path / "cache" / "teachers").exists() and not (tmp_path / "cache" / "teacher_outputs").exists()


def test_a_batch_augmentation_on_a_language_model_run_is_refused_not_ignored(tmp_path):
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "distill.run", "experiment=lm", "augment=mixup", f"hydra.run.dir={tmp_path / 'run'}"],
        env={**os.environ, "DISTILL_CACHE_DIR": str(tmp_path / "cache")}, cwd=tmp_path,
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].endswith("token ids cannot be augmented that way: set augment=null")


@pytest.mark.slow  # a short run of the recipe through the CLI (~1 min on a quiet 2-core CPU)
def test_patient_consistent_runs_on_digits_kd_only_on_augmented_views(tmp_path):
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "distill.run", "experiment=patient_consistent", "teacher=resnet14", "student=resnet8",
         "data.image_size=16", "trainer.max_epochs=1", "teacher.train.epochs=1", "report.latency=off",
         "trainer.enable_progress_bar=false", f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=1800, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["loss"]) == {"kd"}
    config = (tmp_path / "run" / ".hydra" / "config.yaml").read_text()
    assert "distill.augment.CutMix" in config and "distill.augment.Mixup" in config
