"""distill.cli.error_policy: the one way every command turns a mistake into one line and an exit code."""

from __future__ import annotations

import pytest
from hydra.errors import InstantiationException
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import OmegaConf

from distill.cli.error_policy import command_entry, guarded, user_error
from distill.errors import DistillError


def raising(error):
    def job():
        raise error

    return job


def wrapped(cause):
    """What Hydra raises when a constructor it calls raises ``cause``."""
    try:
        raise InstantiationException("Error in call to target 'x':\n" + str(cause)) from cause
    except InstantiationException as error:
        return error


def test_user_error_is_the_distill_error_also_behind_hydras_wrapper():
    mistake = DistillError("bad value")
    assert user_error(mistake) is mistake
    assert user_error(wrapped(mistake)) is mistake
    assert user_error(wrapped(TypeError("a bug"))) is None
    assert user_error(RuntimeError("x")) is None


@pytest.mark.parametrize("error", [DistillError("data.root does not exist"), wrapped(DistillError("data.root does not exist"))])
def test_a_mistake_is_one_line_and_exit_code_2(error, capsys):
    with pytest.raises(SystemExit) as stopped:
        guarded(raising(error))
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "error: data.root does not exist\n"


def test_a_missing_value_names_its_key(capsys):
    cfg = OmegaConf.create({"teacher": {"name": "???"}})
    with pytest.raises(SystemExit) as stopped:
        guarded(lambda: cfg.teacher.name)
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "error: teacher.name is not set; give teacher.name=... on the command line\n"


def test_sigterm_exits_143_with_how_to_resume(capsys):
    with pytest.raises(SystemExit) as stopped:
        guarded(raising(SIGTERMException()))
    assert stopped.value.code == 143
    assert "resume=true" in capsys.readouterr().err


def test_bugs_and_full_error_keep_their_traceback(monkeypatch):
    with pytest.raises(RuntimeError):
        guarded(raising(RuntimeError("a bug")))
    with pytest.raises(InstantiationException):
        guarded(raising(wrapped(TypeError("a bug"))))
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(DistillError):
        guarded(raising(DistillError("shown with its traceback")))


def test_a_job_that_works_returns_its_value():
    assert guarded(lambda: 0.5) == 0.5


def test_command_entry_checks_argv_in_one_line_before_hydra(monkeypatch, capsys):
    ran = []
    monkeypatch.setattr("sys.argv", ["distill.x", "teacher=resnet18"])
    command_entry(lambda argv: [*argv, "teacher.name=resnet18"], lambda: ran.append(list(__import__("sys").argv)))
    assert ran == [["distill.x", "teacher=resnet18", "teacher.name=resnet18"]]

    def refuse(argv):
        raise DistillError("unknown teacher 'resnt18'")

    with pytest.raises(SystemExit) as stopped:
        command_entry(refuse, lambda: ran.append("hydra started"))
    assert stopped.value.code == 2 and len(ran) == 1
    assert capsys.readouterr().err == "error: unknown teacher 'resnt18'\n"
