"""The CIFAR-100 benchmark recipes compose to the published schedule (Tian et al. 2020, section 4 and appendix)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from distill.run import config_dir

CONF = config_dir()
#: recipe -> (teacher, student): the six same-family pairs of CRD's Table 1 that the issue names
PAIRS = {
    "resnet56_resnet20": ("resnet56", "resnet20"),
    "resnet110_resnet32": ("resnet110", "resnet32"),
    "resnet32x4_resnet8x4": ("resnet32x4", "resnet8x4"),
    "wrn_40_2_wrn_16_2": ("wrn_40_2", "wrn_16_2"),
    "wrn_40_2_wrn_40_1": ("wrn_40_2", "wrn_40_1"),
    "vgg13_vgg8": ("vgg13", "vgg8"),
}


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_every_recipe_file_is_a_tested_pair_or_the_shared_schedule():
    files = {p.stem for p in (CONF / "experiment" / "cifar100").glob("*.yaml")}
    assert files == {*PAIRS, "benchmark"}


@pytest.mark.parametrize("recipe", sorted(PAIRS))
def test_recipe_composes_to_the_benchmark_schedule(recipe):
    cfg = composed(f"experiment=cifar100/{recipe}")
    assert (cfg.teacher.name, cfg.student.name) == PAIRS[recipe]
    assert cfg.data._target_ == "distill.data.CIFAR100DataModule"
    assert cfg.data.batch_size == 64 and cfg.trainer.max_epochs == 240
    schedule = {
        "optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
        "lr_scheduler": {
            "_target_": "torch.optim.lr_scheduler.MultiStepLR", "_partial_": True,
            "milestones": [150, 180, 210], "gamma": 0.1,
        },
    }
    student = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in schedule}
    assert student == schedule
    # the teacher-training recipe: the same 240 epochs on the same schedule
    teacher = OmegaConf.to_container(cfg.teacher.train, resolve=True)
    assert teacher == {"epochs": 240, **schedule}
    # KD as in the benchmark: T = 4, 0.9 KD + 0.1 cross-entropy
    loss = OmegaConf.to_container(cfg.loss)
    assert loss["kd"]["temperature"] == 4.0 and (loss["kd"]["weight"], loss["ce"]["weight"]) == (0.9, 0.1)


def test_methods_and_settings_combine_with_a_recipe():
    cfg = composed("experiment=cifar100/resnet32x4_resnet8x4", "loss=crd", "loss.crd.num_samples=50000", "optimizer.lr=0.01")
    assert set(cfg.loss) == {"crd", "ce"} and cfg.loss.crd.num_samples == 50000
    assert cfg.optimizer.lr == 0.01 and cfg.teacher.train.optimizer.lr == 0.01
    cfg = composed("experiment=cifar100/benchmark", "teacher=resnet56", "student=resnet20", "loss=dkd")
    assert (cfg.teacher.name, cfg.student.name, cfg.trainer.max_epochs) == ("resnet56", "resnet20", 240)
    assert cfg.loss.dkd.warmup_epochs == 20


def test_other_experiments_keep_the_cosine_default():
    cfg = composed("experiment=quick")
    assert cfg.lr_scheduler._target_ == "torch.optim.lr_scheduler.CosineAnnealingLR"
    assert cfg.lr_scheduler.T_max == cfg.trainer.max_epochs == 2


def readme_method_overrides() -> dict[str, list[str]]:
    """The 'add' column of the README's CIFAR-100 method table, as command-line overrides."""
    import re
    import shlex

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("## CIFAR-100 benchmark recipes"):]
    section = section[: section.index("\n## ")]
    rows = re.findall(r"^\| (\w+) \| `([^`]+)`", section, re.MULTILINE)
    return {method: [o for o in shlex.split(add) if "=" in o] for method, add in rows if add.startswith("loss=")}


def test_readme_lists_every_method_of_the_benchmark():
    methods = set(readme_method_overrides())
    assert methods == {"FitNet", "AT", "SP", "CC", "VID", "RKD", "PKT", "AB", "FT", "FSP", "NST", "CRD", "DKD"}


@pytest.mark.parametrize("method", sorted(readme_method_overrides()))
def test_readme_method_trains_a_step_on_cifar_networks(method, tmp_path):
    """Each method's overrides, as the README gives them, on a CIFAR teacher and student of other widths."""
    import copy

    import torch

    from distill import DistillationModule
    from distill.data import DigitsDataModule
    from distill.models import build_model
    from distill.cli.training import loss_term

    overrides = readme_method_overrides()[method]
    cfg = composed("teacher=vgg8", "student=resnet8", *overrides)
    terms = {name: loss_term(node) for name, node in cfg.loss.items()}
    torch.manual_seed(0)
    teacher, student = build_model("vgg8", 10).eval(), build_model("resnet8", 10)
    teacher_state = copy.deepcopy(teacher.state_dict())
    module = DistillationModule(student, teacher, terms)
    data = DigitsDataModule(batch_size=16, image_size=16, channels=3, with_index=True)
    batch = next(iter(data.val_dataloader()))
    module.build(batch)
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.01)
    student_before = copy.deepcopy(student.state_dict())
    loss = module.training_step(batch, 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(v, student.state_dict()[k]) for k, v in student_before.items())
    assert all(torch.equal(teacher_state[k], v) for k, v in teacher.state_dict().items())
