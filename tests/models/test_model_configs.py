"""Every teacher/student config composes and builds; a CIFAR pair runs through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from hydra.utils import instantiate

from distill.cli.overrides import group_options
from distill.models import ModelSpec, build_model
from distill.models.cifar import CIFAR_MODELS
from distill.models.mnist1d import MNIST1D_MODELS
from distill.models.torchvision_models import torchvision_model_names
from distill.cli.config_directory import config_dir

CONF = config_dir()
#: the generic configs name no model; a small one of their family stands in
STAND_INS = {"torchvision": "mobilenet_v3_small", "cifar": "resnet8", "timm": "timm:test_resnet"}


#: torchvision names that stand for the ~80 stored ones (building all of them would take minutes)
TORCHVISION_SAMPLE = ("resnet18", "efficientnet_b0", "mobilenet_v3_small")


def model_configs(group: str) -> list[str]:
    """The group's files, every CIFAR and MNIST-1D name, and a sample of torchvision's names."""
    files = {p.stem for p in (CONF / group).glob("*.yaml")}
    return sorted(files | set(CIFAR_MODELS) | set(MNIST1D_MODELS) | set(TORCHVISION_SAMPLE))


@pytest.mark.parametrize("group", ["teacher", "student"])
def test_every_model_config_composes_and_builds_with_10_classes(group, tiny_bert):
    built, bert = [], tiny_bert(num_labels=10)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for option in model_configs(group):
            if option == "ensemble":  # several teachers, not one model: tests/test_unlabeled.py runs one
                continue
            if option == "hf_causal_lm":  # a saved causal LM's directory: tests/lm/ build it
                continue
            if option == "student_base":  # the LoRA student's own base model: tests/lm/test_self_distillation.py
                continue
            overrides = [f"{group}={option}"]
            if option == "tiny_gpt2":  # a causal LM: its context length is the LM data's block size
                overrides.append("data=lm_text")
            if option in STAND_INS:
                overrides.append(f"{group}.name={STAND_INS[option]}")
            if option == "hf_sequence_classification":  # a local directory is its model name
                overrides.append(f"{group}.path={bert}" if group == "teacher" else f"{group}.config_from={bert}")
            # the config tree is the constructor tree: instantiating the group gives the model's spec
            spec = instantiate(compose("config", overrides=overrides)[group])
            assert isinstance(spec, ModelSpec), option
            model = build_model(spec.name, 10, weights=spec.weights, **spec.options)
            built.append(option)
            assert model is not None
    # the CIFAR networks and timm are among them
    assert {"resnet20", "wrn_40_2", "vgg13", "mobilenetv2", "shufflenetv2", "timm", "cifar", "hf_sequence_classification"} <= set(built)


@pytest.mark.parametrize("group", ["teacher", "student"])
def test_every_model_name_is_an_option_without_a_file_of_its_own(group):
    options = set(group_options(CONF, group))
    assert {*torchvision_model_names(), *CIFAR_MODELS, *MNIST1D_MODELS} <= options
    files = {p.stem for p in (CONF / group).glob("*.yaml")}
    assert not files & set(CIFAR_MODELS), "a CIFAR name needs no file: the ConfigStore holds it"
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for name, family_default in (("vit_b_16", "torchvision"), ("wrn_40_2", "cifar")):
            node = compose("config", overrides=[f"{group}={name}"])[group]
            generic = compose("config", overrides=[f"{group}={family_default}", f"{group}.name={name}"])[group]
            assert node == generic  # the stored name is its family's generic config plus the name


def test_cifar_configs_name_their_own_network():
    for group in ("teacher", "student"):
        for option in ("resnet8x4", "wrn_16_2", "shufflenetv1"):
            with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
                node = compose("config", overrides=[f"{group}={option}"])[group]
            assert node.name == option
    assert "train" in node or group == "student"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distill.run", *args],
        cwd=cwd, env={**os.environ}, capture_output=True, text=True, timeout=600, check=False,
    )


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_cifar_pair_runs_on_digits_through_the_cli(tmp_path):
    result = run_cli(
        "teacher=resnet20", "student=resnet8", "data.image_size=16", "trainer.max_epochs=1",
        "teacher.train.epochs=1", "+trainer.limit_train_batches=2", "report.latency=off", "+trainer.limit_val_batches=1",
        "+trainer.limit_test_batches=1", "trainer.enable_progress_bar=false", "logger=csv",
        f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(next((tmp_path / "run").glob("summary.json")).read_text())
    assert summary["teacher"]["name"] == "resnet20" and summary["student"]["name"] == "resnet8"
    # the run counts the models' parameters itself: the CIFAR ResNets with 10 classes
    assert summary["student"]["parameters"] == sum(p.numel() for p in build_model("resnet8", 10).parameters())


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_prefixed_timm_name_reaches_the_config_from_the_cli(tmp_path):
    pytest.importorskip("timm")
    result = run_cli("student=timm:test_resnet", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "name: timm:test_resnet" in result.stdout


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_unknown_timm_name_is_one_error_line(tmp_path):
    pytest.importorskip("timm")
    tiny = ["teacher=resnet8", "data.image_size=8", "teacher.train.epochs=1", "+trainer.limit_train_batches=1",
            "+trainer.limit_val_batches=1", "trainer.enable_progress_bar=false"]
    result = run_cli("student=timm:test_resnt", *tiny, f"cache_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown timm model 'test_resnt'")
    # found before the teacher was trained
    assert not (tmp_path / "run" / "teacher_training").exists()
