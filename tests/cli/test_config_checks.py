"""Every value of distill's own keys checked by type and range on the composed config, before any work."""

from __future__ import annotations

import logging

import pytest
from hydra import compose, initialize_config_dir

from distill.cli.config_checks import check_batch_size, check_buildable, check_config
from distill.cli.overrides import group_options
from distill.models.torchvision_models import torchvision_model_names
from distill.data import DigitsDataModule
from distill.errors import DistillError
from distill.models import build_model
from distill.run import config_dir


@pytest.fixture(scope="module")
def config():
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        yield lambda *overrides: compose("config", overrides=list(overrides))


#: override -> what the one-line error must say: the full key, the value, the allowed range
BAD = {
    "seed=-5": "seed must be a whole number in 0..4294967295, got -5",
    "seed=abc": "seed must be a whole number in 0..4294967295, got 'abc'",
    "seed=1.5": "seed must be a whole number in 0..4294967295, got 1.5",
    "seed=true": "seed must be a whole number in 0..4294967295, got True",
    "seed=4294967296": "got 4294967296",
    "trainer.max_epochs=-1": "trainer.max_epochs must be a whole number >= 1, got -1",
    "trainer.max_epochs=0": "trainer.max_epochs must be a whole number >= 1, got 0",
    "trainer.max_epochs=abc": "trainer.max_epochs must be a whole number >= 1, got 'abc'",
    "trainer.max_epochs=2.5": "trainer.max_epochs must be a whole number >= 1, got 2.5",
    "trainer.max_epochs=null": "trainer.max_epochs must be a whole number >= 1, got None",
    "teacher.train.epochs=-1": "teacher.train.epochs must be a whole number >= 0, got -1",
    "teacher.train.epochs=x": "teacher.train.epochs must be a whole number >= 0, got 'x'",
    "teacher.train.epochs=0": "teacher.train.epochs=0: the teacher would stay random (untrained)",
    "+trainer.accumulate_grad_batches=0": "trainer.accumulate_grad_batches must be a whole number >= 1, got 0",
    "+trainer.min_epochs=-2": "trainer.min_epochs must be a whole number >= 0, got -2",
    "trainer.log_every_n_steps=0": "trainer.log_every_n_steps must be a whole number >= 1, got 0",
    "trainer.gradient_clip_val=-1": "trainer.gradient_clip_val must be a finite number >= 0, got -1.0",
    "optimizer.lr=-0.1": "optimizer.lr must be a finite number >= 0, got -0.1",
    "optimizer.lr=nan": "optimizer.lr must be a finite number >= 0, got nan",
    "optimizer.lr=inf": "optimizer.lr must be a finite number >= 0, got inf",
    "optimizer.lr=fast": "optimizer.lr must be a finite number >= 0, got 'fast'",
    "optimizer.lr=0": "optimizer.lr=0: a learning rate of 0 never changes the model; if you mean it, add +force=true",
    "optimizer.momentum=-0.5": "optimizer.momentum must be a finite number >= 0, got -0.5",
    "optimizer.weight_decay=abc": "optimizer.weight_decay must be a finite number >= 0, got 'abc'",
    "teacher.train.optimizer.lr=-1": "teacher.train.optimizer.lr must be a finite number >= 0, got -1.0",
    "teacher.train.optimizer.lr=0": "teacher.train.optimizer.lr=0: a learning rate of 0",
    "lr_scheduler=multistep lr_scheduler.milestones=abc": "lr_scheduler.milestones must be a list of whole numbers >= 0",
    "lr_scheduler=multistep lr_scheduler.milestones=[1,b]": "lr_scheduler.milestones must be a list of whole numbers >= 0",
    "lr_scheduler=multistep lr_scheduler.milestones=[1.5]": "got [1.5]",
    "lr_scheduler=multistep lr_scheduler.gamma=0": "lr_scheduler.gamma must be a finite number > 0, got 0.0",
    "lr_scheduler.T_max=0": "lr_scheduler.T_max must be a whole number >= 1, got 0",
    "loss.kd.temperature=abc": "loss.kd.temperature must be a finite number > 0, got 'abc'",
    "loss.kd.temperature=0": "loss.kd.temperature must be a finite number > 0, got 0.0",
    "loss.kd.temperature=-inf": "loss.kd.temperature must be a finite number > 0, got -inf",
    "loss.ce.weight=-1": "loss.ce.weight must be a finite number >= 0, got -1.0",
    "loss.ce.weight=[1]": "loss.ce.weight must be a finite number >= 0, got [1]",
    "loss=dkd loss.dkd.beta=x": "loss.dkd.beta must be a finite number >= 0, got 'x'",
    "loss=dkd loss.dkd.warmup_epochs=-3": "loss.dkd.warmup_epochs must be a whole number >= 0, got -3",
    "loss=kd_pseudo_label loss.pseudo_label.threshold=2": "loss.pseudo_label.threshold must be a finite number >= 0 and <= 1",
    "loss.kd=5": "loss.kd must be a loss term config with a _target_, got 5",
    "loss.kd=abc": "loss.kd must be a loss term config with a _target_, got 'abc'",
    "+loss.mse._target_=torch.nn.MSELoss": "loss.mse._target_=torch.nn.MSELoss is not a distill loss term",
    "+loss.x._target_=distill.nope.Nope": "loss.x._target_=distill.nope.Nope cannot be imported",
    "+loss.x._target_=distill.losses.Nope": "loss.x._target_=distill.losses.Nope cannot be imported",
    "~loss.kd.temperature ~loss.kd._target_ ~loss.kd.weight +loss.kd.scale=2": "loss.kd must be a loss term config with a _target_",
    "data.batch_size=0": "data.batch_size must be a whole number >= 1, got 0",
    "data.batch_size=8.0": "data.batch_size must be a whole number >= 1, got 8.0",
    "data.num_workers=-1": "data.num_workers must be a whole number >= 0, got -1",
    "data.image_size=0": "data.image_size must be a whole number >= 1, got 0",
    "data.image_size=big": "data.image_size must be a whole number >= 1, got 'big'",
    "data.image_size=30000": "data.image_size=30000: images this large need tens of GB per batch",
    "data.labels=maybe": "data.labels must be true or false, got 'maybe'",
    "resume=yes": "resume must be true or false, got 'yes'",
    "baseline=1": "baseline must be true or false, got 1",
    "teacher.cache=on": "teacher.cache must be true or false, got 'on'",
    "teacher=ensemble +teacher.members.a.name=resnet18 +teacher.members.a.train.epochs=-1":
        "teacher.members.a.train.epochs must be a whole number >= 0, got -1",
    "report.latency=fast": "report.latency must be one of off, quick, full (or true/false), got 'fast'",
    "report.latency=null": "report.latency must be one of off, quick, full (or true/false), got None",
    "teacher.dtype=bf17": "teacher.dtype must be one of bfloat16, bf16, float16, fp16, float32, got 'bf17'",
    "verbose=maybe": "verbose must be true or false, got 'maybe'",
    # legal but almost certainly wrong (refused unless +force=true)
    "optimizer.lr=1e9": "optimizer.lr=1000000000.0: a learning rate above 10 makes every optimizer distill configures diverge",
    "optimizer.momentum=1.5": "optimizer.momentum=1.5: a momentum of 1 or more makes each step larger than the last",
    "optimizer.momentum=1": "optimizer.momentum=1: a momentum of 1 or more",
    "loss.kd.temperature=1e-30": "loss.kd.temperature=1e-30: a temperature this small turns the softmax into an argmax",
    "+trainer.limit_train_batches=0": "trainer.limit_train_batches=0: no training batch would run",
    # Lightning's batch counts: a whole number or a fraction in [0, 1]
    "+trainer.limit_train_batches=1.5": "trainer.limit_train_batches must be a whole number >= 0 or a finite number >= 0 and <= 1, got 1.5",
    "+trainer.limit_val_batches=-1": "trainer.limit_val_batches must be a whole number >= 0 or",
    "+trainer.limit_test_batches=all": "got 'all'",
    "+trainer.val_check_interval=0": "trainer.val_check_interval must be a whole number >= 1 or a finite number > 0 and <= 1, got 0",
    "+trainer.val_check_interval=2.5": "got 2.5",
    "data.val_fraction=abc": "data.val_fraction must be a finite number >= 0 and <= 1, got 'abc'",
    "data.test_fraction=2": "data.test_fraction must be a finite number >= 0 and <= 1, got 2.0",
    "data.unlabeled_fraction=-0.5": "data.unlabeled_fraction must be a finite number >= 0 and <= 1, got -0.5",
    # an empty path or name is an unset shell variable, not "none" (that is null)
    "cache_dir=": "cache_dir must be a path or name, not empty (an unset shell variable?)",
    "ckpt_path=": "ckpt_path must be a path or name, not empty",
    "teacher.checkpoint=": "teacher.checkpoint must be a path or name, not empty",
    "teacher.weights=": "teacher.weights must be a path or name, not empty",
    "data=image_folder data.root=": "data.root must be a path or name, not empty",
    "logger=csv logger.save_dir=": "logger.save_dir must be a path or name, not empty",
    "teacher=ensemble +teacher.members.a.name=resnet18 +teacher.members.a.checkpoint=":
        "teacher.members.a.checkpoint must be a path or name, not empty",
}


@pytest.mark.parametrize("overrides", sorted(BAD))
def test_a_bad_value_is_named_with_its_key_value_and_range(config, overrides):
    with pytest.raises(DistillError) as raised:
        check_config(config(*overrides.split()))
    assert BAD[overrides] in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("overrides", [
    "teacher.train.epochs=0 teacher.checkpoint=given.pt",  # the teacher is not trained: its schedule is unused
    "teacher.train.epochs=0 teacher.weights=DEFAULT",
    "loss.ce=null",
    "trainer.gradient_clip_val=0.5 +trainer.accumulate_grad_batches=4 seed=0",
    "lr_scheduler=multistep lr_scheduler.milestones=[2,4]",
    "report.latency=false",  # false is off, true is full
    "report.latency=true",
    "+trainer.limit_train_batches=0.25 +trainer.limit_val_batches=3 +trainer.val_check_interval=0.5",
    "optimizer.lr=10 optimizer.momentum=0.99 loss.kd.temperature=0.5",
    "cache_dir=/tmp/elsewhere ckpt_path=null teacher.checkpoint=null",
])
def test_good_values_pass(config, overrides):
    check_config(config(*overrides.split()))


@pytest.mark.parametrize("overrides", [
    "optimizer.lr=0", "teacher.train.epochs=0", "data.image_size=2048", "optimizer.lr=100", "optimizer.momentum=1",
    "loss.kd.temperature=0.01", "+trainer.limit_train_batches=0",
])
def test_force_turns_a_suspicious_value_into_a_warning(config, overrides, caplog):
    with caplog.at_level(logging.WARNING, logger="distill"):
        check_config(config(*overrides.split(), "+force=true"))
    assert "kept because force=true" in caplog.text


@pytest.mark.parametrize("group", ["loss", "experiment", "teacher", "student", "data", "lr_scheduler", "trainer"])
def test_every_shipped_config_passes(config, group):
    options = group_options(config_dir(), group)
    if group in ("teacher", "student"):  # the files and the CIFAR names; torchvision's ~80 names share one config
        torchvision = set(torchvision_model_names()) - {"resnet18"}
        options = [o for o in options if o not in torchvision]
    for option in options:
        overrides = [f"{group}={option}"]
        if group in ("teacher", "student") and option in ("torchvision", "timm"):
            overrides.append(f"{group}.name=resnet18")
        check_config(config(*overrides))


@pytest.mark.parametrize("override, message", [
    ("+optimizer.moment=0.9", "optimizer cannot be built: SGD.__init__() got an unexpected keyword argument 'moment'"),
    ("optimizer._target_=torch.optim.Nope", "optimizer cannot be built"),
    ("+lr_scheduler.warmup=3", "lr_scheduler cannot be built"),
    ("+teacher.train.optimizer.betas=[0.9]", "teacher.train.optimizer cannot be built"),
    ("+teacher.train.lr_scheduler.nope=1", "teacher.train.lr_scheduler cannot be built"),
    ("+callbacks.extra._target_=lightning.pytorch.callbacks.EarlyStopping", "callbacks.extra cannot be built"),
])
def test_every_object_of_the_run_is_built_before_training(config, override, message):
    cfg = config(override, "~callbacks.best_checkpoint", "~callbacks.last_checkpoint", "~callbacks.preemption")
    with pytest.raises(DistillError) as raised:
        check_buildable(cfg, build_model("resnet18", 10))
    assert message in str(raised.value)


def test_the_shipped_objects_build(config):
    check_buildable(config("~callbacks.best_checkpoint", "~callbacks.last_checkpoint", "~callbacks.preemption"),
                    build_model("resnet18", 10))


def test_a_batch_larger_than_the_training_split_is_a_warning(config, caplog):
    with caplog.at_level(logging.WARNING, logger="distill"):
        check_batch_size(config("data.batch_size=1257"), DigitsDataModule(batch_size=1257, image_size=8))
        assert not caplog.text
        check_batch_size(config("data.batch_size=2000"), DigitsDataModule(batch_size=2000, image_size=8))
    assert "data.batch_size=2000 is larger than the training split (1257 samples)" in caplog.text
    loader = DigitsDataModule(batch_size=2000, image_size=8).train_dataloader()
    assert [len(x) for x, _ in loader] == [1257]  # the one, incomplete batch is kept: something trains


@pytest.mark.parametrize("batch_size", [1, 2, 4, 8, 1256])
def test_the_incomplete_last_training_batch_is_dropped(batch_size):
    """Digits' 1,257 training samples leave one sample over for these sizes: BatchNorm cannot train on it."""
    data = DigitsDataModule(batch_size=batch_size, image_size=8)
    sizes = [len(x) for x, _ in data.train_dataloader()] if batch_size > 2 else None
    loader = data.train_dataloader()
    assert len(loader) == 1257 // batch_size
    if sizes is not None:
        assert set(sizes) == {batch_size}
    # evaluation and the teacher-output cache still see every sample
    assert sum(len(b[0]) for b in data.val_dataloader()) == len(data.splits["val"])
    assert sum(len(b[0]) for b in data.test_dataloader()) == len(data.splits["test"])
    assert len(data.cache_dataloader().dataset) == 1257 and not data.cache_dataloader().drop_last
