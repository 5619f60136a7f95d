"""The command line read and composed as Hydra will, before Hydra runs (distill/cli/hydra_preflight.py)."""

import pytest

from distill.cli.config_directory import config_dir
from distill.cli.hydra_preflight import check_composition, check_grammar, first_job, hydra_arguments
from distill.errors import DistillError

CONF = config_dir()


@pytest.mark.parametrize(
    "argv",
    [
        ["trainer.max_epochs=3", "loss=[kd,ce]", "+trainer.gradient_clip_val=1.0", "~loss.ce"],
        ["-m", "loss=kd,dkd", "seed=range(0,3)", "optimizer.lr=interval(0.01,0.1)"],
        ["hydra.run.dir=out/${now:%H}", "data.root='/data/with space'"],
        ["--cfg", "job", "trainer.max_epochs=1"],
    ],
)
def test_what_hydra_reads_passes(argv):
    check_grammar(argv)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["trainer.max_epochs=["], "cannot read the override trainer.max_epochs=[: "),
        (["trainer.max_epochs"], "there is no '=' (write key=value)"),
        (["=5"], "the override =5 has no key"),
        (["data.root=a=b"], "cannot read the override data.root=a=b: mismatched input '='"),
        (["loss=[kd,"], "cannot read the override loss=[kd,: "),
        (["trainer.max_epochs=1", "-m", "seed=1,2"], "unrecognized arguments: seed=1,2: put flags such as -m before"),
        (["--bogus"], "unrecognized arguments: --bogus; the overrides are key=value"),
    ],
)
def test_what_hydra_cannot_read_is_one_line(argv, message):
    with pytest.raises(DistillError) as error:
        check_grammar(argv)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_flags_stand_apart_from_the_overrides():
    args = hydra_arguments(["-m", "seed=1,2", "--cfg", "job"])
    assert args.multirun and args.cfg == "job" and args.overrides == ["seed=1,2"]


def test_a_sweeps_first_job_takes_each_first_value_and_leaves_search_spaces_out():
    job = first_job(["loss=kd,dkd", "seed=range(3,6)", "optimizer.lr=interval(0.01,0.1)", "trainer.max_epochs=2"])
    assert job == ["loss=kd", "seed=3", "trainer.max_epochs=2"]


@pytest.mark.parametrize(
    "argv",
    [
        ["trainer.max_epochs=3", "loss=[kd,ce]", "loss.ce.weight=0.1"],
        ["-m", "loss=kd,dkd", "seed=0,1"],
        ["-m", "hparams_search=kd_optuna"],
        ["experiment=binary_heads"],
        ["~logger"],
        ["hydra.run.dir=/tmp/out/${now:%H}"],
    ],
)
def test_what_composes_passes(argv):
    check_composition(argv, CONF, "config")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["+trainer.max_epochs=3"], "An item is already at 'trainer.max_epochs'; Either remove + prefix"),
        (["~logger.save_dir"], "set it instead (logger.save_dir=VALUE, or logger.save_dir=null)"),
        (["~trainer.nothing"], "'trainer.nothing' does not exist"),
        (["hydra/launcher=nope"], "the options of 'hydra/launcher' are basic"),
        (["-m", "+trainer.max_epochs=1,2"], "An item is already at 'trainer.max_epochs'"),
        (["hydra.mode=MULTIRUN", "+trainer.max_epochs=1,2"], "An item is already at 'trainer.max_epochs'"),
    ],
)
def test_what_does_not_compose_is_one_line(argv, message):
    with pytest.raises(DistillError) as error:
        check_composition(argv, CONF, "config")
    text = str(error.value)
    assert text.startswith("the command line does not compose: ") and message in text
    assert "\n" not in text and "HYDRA_FULL_ERROR" not in text and "https://" not in text


def test_full_error_leaves_it_to_hydra(monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    check_grammar(["trainer.max_epochs=["])
    check_composition(["+trainer.max_epochs=3"], CONF, "config")


def test_evaluate_and_export_compose_their_own_config():
    with pytest.raises(DistillError, match="does not exist"):
        check_composition(["checkpoint=x.ckpt", "~nothing_here"], CONF, "evaluate")
    check_composition(["checkpoint=x.ckpt"], CONF, "export")
