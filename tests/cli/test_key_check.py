"""Override-key typos get one line with the close match (exit code 2), checked against config and constructor."""

from __future__ import annotations

import subprocess
import sys

import pytest

from distill.cli.key_check import check_loss_order, check_override_keys, target_arguments
from distill.errors import DistillError
from distill.run import config_dir

CONF = config_dir()


@pytest.mark.parametrize(("argv", "message"), [
    (["loss.kd.temprature=4"], "unknown key 'temprature' in loss.kd; did you mean 'temperature'?"),
    (["+loss.kd.temprature=4"], "unknown key 'temprature' in loss.kd: distill.losses.KD takes no argument 'temprature'; did you mean 'temperature'?"),
    (["+trainer.max_epoch=2"], "unknown key 'max_epoch' in trainer: lightning.Trainer takes no argument 'max_epoch'; did you mean 'max_epochs'?"),
    (["trainer.max_epoch=2"], "unknown key 'max_epoch' in trainer; did you mean 'max_epochs'?"),
    (["+optimizer.moment=0.9"], "torch.optim.SGD takes no argument 'moment'; did you mean 'momentum'?"),
    (["sed=1"], "unknown key 'sed' in the config; did you mean 'seed'?"),
    (["trainer.limit_train_batches=2"], "trainer.limit_train_batches is not in the config, but lightning.Trainer takes it: add it with +trainer.limit_train_batches=2"),
    # the key is checked in the config the group choices compose (experiment=quick, loss=fitnet)
    (["experiment=quick", "data.image_siz=8"], "unknown key 'image_siz' in data; did you mean 'image_size'?"),
    (["loss=fitnet", "loss.fitnet.student_layr=layer1"], "unknown key 'student_layr' in loss.fitnet; did you mean 'student_layer'?"),
    # a new top-level key that nothing reads (Hydra would add it silently)
    (["+sed=1"], "unknown top-level key 'sed': nothing reads it; did you mean 'seed'?"),
    (["++verbos=true"], "unknown top-level key 'verbos': nothing reads it; did you mean 'verbose'?"),
])
def test_a_misspelt_key_is_named_with_its_close_match(argv, message):
    with pytest.raises(DistillError) as caught:
        check_override_keys(argv, CONF)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_real_keys_sweeps_additions_and_schedules_pass():
    check_override_keys([
        "-m", "loss.kd.temperature=1,4", "teacher=resnet18", "+trainer.limit_train_batches=2", "seed=3",
        "logger=tensorboard", "loss=[kd,fitnet]", "loss.fitnet.weight=3", "~loss.ce", "hydra.run.dir=/tmp/x",
        "+loss.kd.schedule={_target_: distill.losses.schedules.Constant}",
    ], CONF)
    # the README's own data module: the node's class is replaced, so its keys are that class's
    check_override_keys(["~data", "+data._target_=my_data.TensorFiles", "+data.root=/x", "+data.num_classes=5"], CONF)


def test_constructor_arguments_are_read_from_the_signature():
    from omegaconf import OmegaConf

    assert "temperature" in target_arguments(OmegaConf.create({"_target_": "distill.losses.KD"}))
    assert target_arguments(OmegaConf.create({"_target_": "builtins.dict"})) is None  # **kwargs: anything goes
    assert target_arguments(OmegaConf.create({"a": 1})) is None


def test_loss_lists_that_set_one_term_differently_ask_which_wins():
    with pytest.raises(DistillError, match=r"loss=\[kd,fitnet\]: loss.ce.weight is 0.1 in kd vs 1.0 in fitnet, "
                                           r"and only the order of the list would decide; say which with loss.ce.weight=0.1"):
        check_loss_order(["loss=[kd,fitnet]"], CONF)
    with pytest.raises(DistillError, match=r"1.0 in fitnet vs 0.1 in kd"):
        check_loss_order(["loss=[fitnet,kd]"], CONF)
    check_loss_order(["loss=[fitnet,kd]", "loss.ce.weight=1.0"], CONF)  # said which: accepted in either order
    check_loss_order(["loss=[kd,fitnet]", "loss.ce.weight=1.0"], CONF)
    check_loss_order(["loss=kd"], CONF)


def test_the_command_line_exits_2_with_the_line_and_no_hydra_advice(tmp_path):
    made = subprocess.run(
        [sys.executable, "-m", "distill.run", "loss.kd.temprature=4", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert made.returncode == 2
    assert made.stderr.strip().splitlines()[-1] == "error: unknown key 'temprature' in loss.kd; did you mean 'temperature'?"
    assert "not in struct" not in made.stderr and "HYDRA_FULL_ERROR" not in made.stderr


@pytest.mark.parametrize(("command", "argv", "message"), [
    ("distill.export", ["checkpoint=x.ckpt", "output=student.pt2"], "unknown key 'output' in the config; did you mean 'out'?"),
    ("distill.evaluate", ["checkpoint=x.ckpt", "out_dri=eval"], "unknown key 'out_dri' in the config; did you mean 'out_dir'?"),
    ("distill.export", ["checkpoint=x.ckpt", "data.image_siz=8"], "unknown key 'image_siz' in data; did you mean 'image_size'?"),
])
def test_evaluate_and_export_name_a_misspelt_key_too(command, argv, message):
    from distill.cli.overrides import check_checkpoint_command

    with pytest.raises(DistillError) as caught:
        check_checkpoint_command(argv, command)
    assert str(caught.value) == message
    # their real keys pass
    check_checkpoint_command(["checkpoint=x.ckpt", "out=s.pt2", "format=onnx", "tolerance=1e-4", "data=cifar10",
                              "data.image_size=32"], "distill.export")
    check_checkpoint_command(["checkpoint=x.ckpt", "out_dir=e", "per_sample=true", "report.latency=off"], "distill.evaluate")


def test_export_with_output_instead_of_out_is_one_line_and_exit_2(tmp_path):
    made = subprocess.run(
        [sys.executable, "-m", "distill.export", f"checkpoint={tmp_path / 'best.ckpt'}", "output=student.pt2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert made.returncode == 2
    assert made.stderr.strip().splitlines() == ["error: unknown key 'output' in the config; did you mean 'out'?"]


def test_a_new_top_level_key_is_meant_when_distill_or_an_interpolation_reads_it():
    check_override_keys(["+force=true"], CONF)
    check_override_keys(["hydra.run.dir=out/${tag}", "+tag=a"], CONF)
    check_override_keys(["+tag=a", "hydra.job.name=${tag}_${seed}"], CONF)
    with pytest.raises(DistillError, match="unknown top-level key 'tag'"):
        check_override_keys(["+tag=a"], CONF)


def test_a_key_added_earlier_on_the_line_can_be_set_later():
    # Hydra applies overrides in order: +a=1 adds the key, a later a=2 sets it (a shell alias plus a user's value)
    check_override_keys(["+trainer.limit_train_batches=2", "trainer.limit_train_batches=5"], CONF)
    with pytest.raises(DistillError, match="add it with \\+trainer.limit_train_batches=5"):
        check_override_keys(["trainer.limit_train_batches=5", "+trainer.limit_train_batches=2"], CONF)
