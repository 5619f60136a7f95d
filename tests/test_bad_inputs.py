"""The real command line on bad inputs: exit code 2, one clear `error:` line naming the value and
the fix, no traceback, and no earlier output of the run directory overwritten."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest
import torch
from torchvision import models

#: about 40 real command-line runs, several minutes on 2 CPU cores
pytestmark = pytest.mark.slow

TINY = [
    "teacher=resnet18", "student=mobilenet_v3_small", "data.image_size=8", "trainer.max_epochs=1",
    "teacher.train.epochs=1", "+trainer.limit_train_batches=2", "report.latency=off", "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1", "trainer.enable_progress_bar=false",
]
#: what an earlier successful run left in the directory; none of it may change
EARLIER = {"summary.json": b'{"earlier": true}', "student.pt": b"earlier weights", "checkpoints/best.ckpt": b"earlier"}


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    good = models.resnet18(num_classes=10).state_dict()
    torch.save(good, root / "good.pt")
    (root / "empty.pt").write_bytes(b"")
    data = (root / "good.pt").read_bytes()
    (root / "truncated.pt").write_bytes(data[: len(data) // 3])
    torch.save(models.mobilenet_v3_small(num_classes=10).state_dict(), root / "other_model.pt")
    torch.save(models.resnet18(num_classes=5).state_dict(), root / "five_classes.pt")
    (root / "text.pt").write_text("this is a text file, not weights\n")
    nan = models.resnet18(num_classes=10).state_dict()
    nan["fc.bias"][3] = float("nan")
    torch.save(nan, root / "nan.pt")
    with open(root / "pickle.pt", "wb") as handle:
        pickle.dump({"state_dict": Payload()}, handle)
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory, fake_cifar, fake_image_folder):
    root = tmp_path_factory.mktemp("data")
    fake_cifar(root / "bad_label", "cifar10", bad_label=10)
    fake_cifar(root / "good", "cifar10")
    for name in ("a", "b"):
        for split in ("train", "val"):
            (root / "no_images" / split / name).mkdir(parents=True)
    fake_image_folder(root / "other_classes", classes=("cat", "dog"), per_class=1, splits=("train",))
    fake_image_folder(root / "other_classes", classes=("cat", "cow"), per_class=1, splits=("val",))
    return root


#: a proxy that refuses every connection: "offline" on any machine, and nothing is downloaded
OFFLINE = {key: "http://127.0.0.1:9" for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
CIFAR = ["data=cifar10", "data.num_workers=0"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")  # shared, so the tiny teacher is trained once


CASES = {
    "unknown teacher": (["teacher=resnt50"], "unknown teacher 'resnt50' (did you mean resnet50"),
    "unknown student": (["student=resnt18"], "unknown student 'resnt18' (did you mean resnet18"),
    "unknown loss": (["loss=kdd"], "unknown loss 'kdd' (did you mean kd"),
    "unknown data": (["data=digitz"], "unknown data 'digitz' (did you mean digits"),
    "unknown trainer": (["trainer=defualt"], "unknown trainer 'defualt' (did you mean default"),
    "unknown experiment": (["experiment=quik"], "unknown experiment 'quik' (did you mean quick"),
    "unknown model name": (["teacher.name=resnet5"], "unknown model 'resnet5' (did you mean resnet56, resnet50"),
    "misspelt layer": (["student=resnet18", "loss=fitnet", "loss.fitnet.student_layer=layr2"], "student has no layer 'layr2' (did you mean layer2"),
    "teacher with other class count": (["teacher.checkpoint={files}/five_classes.pt"], "fc.weight: checkpoint (5, 512) vs model (10, 512)"),
    "temperature zero": (["loss.kd.temperature=0"], "temperature must be a finite number > 0, got 0.0"),
    "temperature negative": (["loss.kd.temperature=-2"], "temperature must be a finite number > 0, got -2.0"),
    "temperature nan": (["loss.kd.temperature=nan"], "temperature must be a finite number > 0, got nan"),
    "negative weight": (["loss.kd.weight=-1"], "weight must be a finite number >= 0, got -1.0"),
    "nan weight": (["loss.ce.weight=nan"], "weight must be a finite number >= 0, got nan"),
    "labels needed, none given": (["data.labels=false", "teacher.checkpoint={files}/good.pt"], "loss term 'ce' (CrossEntropy) needs labels"),
    "teacher trained first without labels": (["data.labels=false", "loss=kd_pseudo_label"], "teacher resnet18 would be trained first, which needs labels, but data.labels=false"),
    "ensemble without members": (["teacher=ensemble"], "teacher=ensemble needs members"),
    "ensemble member typo": (["teacher=ensemble", "+teacher.members.a.name=resnt18"], "unknown model 'resnt18' (did you mean resnet18"),
    "missing checkpoint": (["teacher.checkpoint={files}/nope.pt"], "checkpoint not found"),
    "empty checkpoint": (["teacher.checkpoint={files}/empty.pt"], "is empty (0 bytes)"),
    "truncated checkpoint": (["teacher.checkpoint={files}/truncated.pt"], "truncated, corrupt or not a PyTorch file"),
    "other architecture": (["teacher.checkpoint={files}/other_model.pt"], "does not fit ResNet"),
    "pickled objects": (["teacher.checkpoint={files}/pickle.pt"], "does not unpickle because that can run arbitrary code"),
    "pretrained weights for other classes": (["teacher.weights=DEFAULT"], "predict 1000 classes but the data has 10"),
    "unknown weights": (["teacher.weights=IMAGENET"], "unknown weights 'IMAGENET' for resnet18"),
    "batch size zero": (["data.batch_size=0"], "data.batch_size must be a whole number >= 1, got 0"),
    "split fractions": (["data.val_fraction=0.9"], "must be in (0, 1) and sum to less than 1"),
    "label smoothing": (["+loss.ce.label_smoothing=1.5"], "label_smoothing must be in [0, 1), got 1.5"),
    "no GPU here": (["trainer.accelerator=gpu"], "the trainer settings do not work here"),
    "zero devices": (["trainer.devices=0"], "the trainer settings do not work here"),
    "deepspeed on cpu": (["trainer=deepspeed", "trainer.accelerator=cpu", "trainer.precision=32"],
                         "the DeepSpeed strategy runs on CUDA GPUs only (Lightning's rule), and this run's accelerator is cpu"),
    "wrong channel count": (["data.channels=1", "teacher.checkpoint={files}/good.pt"], "cannot run on a batch of shape (64, 1, 8, 8)"),
    "unwritable cache": (["cache_dir=/proc/distill-cache"], "cannot create the cache directory /proc/distill-cache/teachers"),
    "nothing to resume": (["resume=true"], "resume=true but"),
    "unwritable output directory": (["hydra.run.dir=/proc/distill-run"], "cannot write the run's outputs to /proc/distill-run"),
    "data root missing": ([*CIFAR, "data.root={data}/nowhere"], "nowhere does not exist (looking for CIFAR-10); set data.root=DIR"),
    "label outside the classes": ([*CIFAR, "data.root={data}/bad_label", "data.val_size=0"], "data_batch_1: 1 label(s) outside 0..9, e.g. 10"),
    "download offline": ([*CIFAR, "data.root={data}/download_here", "data.download=true"], "could not download CIFAR-10 from https://", OFFLINE),
    "teacher cache with random augmentation": (
        [*CIFAR, "data.root={data}/good", "data.val_size=0", "teacher.cache=true", "teacher.checkpoint={files}/good.pt"],
        "teacher.cache=true needs the teacher to see the same training inputs every epoch",
    ),
    "empty data set": (["data=image_folder", "data.root={data}/no_images"], "empty data set: "),
    # every value checked by type and range before any work (distill/cli/config_checks.py)
    "max epochs negative": (["trainer.max_epochs=-1"], "trainer.max_epochs must be a whole number >= 1, got -1"),
    "max epochs text": (["trainer.max_epochs=abc"], "trainer.max_epochs must be a whole number >= 1, got 'abc'"),
    "teacher epochs negative": (["teacher.train.epochs=-1"], "teacher.train.epochs must be a whole number >= 0, got -1"),
    "teacher epochs zero": (["teacher.train.epochs=0"], "teacher.train.epochs=0: the teacher would stay random (untrained) and be cached as if trained; if you mean it, add +force=true"),
    "accumulate zero": (["+trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches must be a whole number >= 1, got 0"),
    "learning rate negative": (["optimizer.lr=-0.1"], "optimizer.lr must be a finite number >= 0, got -0.1"),
    "learning rate nan": (["optimizer.lr=nan"], "optimizer.lr must be a finite number >= 0, got nan"),
    "learning rate zero": (["optimizer.lr=0"], "optimizer.lr=0: a learning rate of 0 never changes the model; if you mean it, add +force=true"),
    "teacher learning rate text": (["teacher.train.optimizer.lr=high"], "teacher.train.optimizer.lr must be a finite number >= 0, got 'high'"),
    "optimizer keyword typo": (["+optimizer.moment=0.9"], "unknown key 'moment' in optimizer: torch.optim.SGD takes no argument 'moment'; did you mean 'momentum'?"),
    "scheduler keyword typo": (["+lr_scheduler.warmup=3"], "unknown key 'warmup' in lr_scheduler: torch.optim.lr_scheduler.CosineAnnealingLR takes no argument 'warmup'"),
    "milestones text": (["lr_scheduler=multistep", "lr_scheduler.milestones=abc"], "lr_scheduler.milestones must be a list of whole numbers >= 0"),
    "temperature text": (["loss.kd.temperature=abc"], "loss.kd.temperature must be a finite number > 0, got 'abc'"),
    "seed negative": (["seed=-5"], "seed must be a whole number in 0..4294967295, got -5"),
    "seed text": (["seed=abc"], "seed must be a whole number in 0..4294967295, got 'abc'"),
    "seed fraction": (["seed=1.5"], "seed must be a whole number in 0..4294967295, got 1.5"),
    "huge images": (["data.image_size=30000"], "data.image_size=30000: images this large need tens of GB per batch"),
    "loss entry a number": (["loss.kd=5"], "loss.kd must be a loss term config with a _target_, got 5"),
    "loss entry not a distill term": (["+loss.mse._target_=torch.nn.MSELoss"], "loss.mse._target_=torch.nn.MSELoss is not a distill loss term"),
    # files that cannot be used, and where not to write
    "text file as teacher checkpoint": (["teacher.checkpoint={files}/text.pt"], "cannot be read: it is truncated, corrupt or not a PyTorch file"),
    "non-finite teacher checkpoint": (["teacher.checkpoint={files}/nan.pt"], "has non-finite weights (1 tensor(s), e.g. fc.bias)"),
    "plain state_dict as ckpt_path": (["teacher.checkpoint={files}/good.pt", "ckpt_path={files}/good.pt"], "is not a Lightning checkpoint of a distill run"),
    "empty run directory": (["hydra.run.dir="], "hydra.run.dir is empty (an unset shell variable?)"),
    "unwritable logger directory": (["logger=csv", "logger.save_dir=/proc/distill-logs"], "cannot write the logger's files to /proc/distill-logs"),
    "empty cache directory": (["cache_dir="], "cache_dir must be a path or name, not empty (an unset shell variable?)"),
    "empty teacher checkpoint": (["teacher.checkpoint="], "teacher.checkpoint must be a path or name, not empty"),
    "limit that trains nothing": (["++trainer.limit_train_batches=0"], "trainer.limit_train_batches=0: no training batch would run"),
    "momentum of one": (["optimizer.momentum=1"], "optimizer.momentum=1: a momentum of 1 or more"),
    # what Hydra itself would refuse, read and composed first (distill/cli/hydra_preflight.py)
    "override unreadable": (["trainer.max_epochs=["], "cannot read the override trainer.max_epochs=[: "),
    "override without '='": (["trainer.max_epochs"], "cannot read the override trainer.max_epochs: there is no '=' (write key=value)"),
    "override without key": (["=5"], "the override =5 has no key: write key=value"),
    "appending a key that exists": (["+trainer.max_epochs=3"], "An item is already at 'trainer.max_epochs'; Either remove + prefix"),
    "deleting an interpolation": (["~logger.save_dir"], "logger.save_dir is an interpolation that is resolved only once the run starts"),
    "deleting a key that does not exist": (["~trainer.nothing"], "Could not delete from config. 'trainer.nothing' does not exist"),
    "empty group choice": (["teacher="], "teacher= chooses no teacher (an unset shell variable?); choose one: cifar, "),
    "unknown top-level key": (["++foo=bar"], "unknown top-level key 'foo': nothing reads it"),
    "unknown Hydra plugin option": (["hydra/launcher=nope"], "Could not find 'hydra/launcher/nope'; the options of 'hydra/launcher' are basic"),
    "flag after the overrides": (["-m", "seed=1,2"], "unrecognized arguments: seed=1,2"),
    "sweep whose jobs do not compose": (["hydra.mode=MULTIRUN", "+trainer.max_epochs=1,2"], "An item is already at 'trainer.max_epochs'"),
    "classes differ between splits": (["data=image_folder", "data.root={data}/other_classes"], "(val/ lacks dog; val/ has cow, which train/ lacks)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, files, data, cache, tmp_path):
    args, message, *env_extra = CASES[case]
    args = [a.format(files=files, data=data) for a in args]
    run_dir = tmp_path / "run"
    for name, content in EARLIER.items():
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_bytes(content)
    if not any(a.startswith("hydra.run.dir=") for a in args):
        args.append(f"hydra.run.dir={run_dir}")
    env = {**os.environ, "DISTILL_CACHE_DIR": str(cache), "no_proxy": "", "NO_PROXY": "", **(env_extra[0] if env_extra else {})}
    env.pop("HYDRA_FULL_ERROR", None)
    result = subprocess.run(
        [sys.executable, "-m", "distill.run", *TINY, *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert len(errors[0]) < 600
    for name, content in EARLIER.items():
        assert (run_dir / name).read_bytes() == content, f"{name} was overwritten"
    # nothing written into the launch directory (an empty cache_dir= once put teachers/ there)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert "this must never run" not in result.stdout


def test_full_error_shows_the_traceback(files, cache, tmp_path):
    env = {**os.environ, "DISTILL_CACHE_DIR": str(cache), "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "distill.run", *TINY, "loss.kd.temperature=0", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode != 0 and "Traceback" in result.stderr
