"""python -m distill.layers: module names and output shapes, to pick layers for feature losses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from distill.errors import DistillError
from distill.layers import layer_shapes, main, parse_args

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_cli_lists_layers_and_reports_unknown_models():
    # both runs at once: each pays for importing torch and torchvision
    ok = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "distill.layers", "model=resnet18"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    bad = subprocess.Popen(
        [sys.executable, "-m", "distill.layers", "teacher=resnet50", "student=resnt18"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out, imports = ok.communicate(timeout=120)
    bad_out, bad_err = bad.communicate(timeout=120)

    assert ok.returncode == 0, imports[-2000:]
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert lines["layer3"].split(None, 1)[1] == "[B, 256, 2, 2]"
    assert lines["avgpool"].split(None, 1)[1] == "[B, 512, 1, 1]"
    imported = [line.rsplit("|", 1)[-1].strip() for line in imports.splitlines() if "|" in line]
    assert not [name for name in imported if name.split(".")[0] == "hydra"], "the CLI must not import Hydra"

    assert bad.returncode == 2 and bad_out == ""
    assert bad_err.count("\n") == 1 and bad_err.startswith("error: unknown model 'resnt18'")
    assert "resnet18" in bad_err  # the close match


def test_main_prints_teacher_and_student_at_the_data_size(capsys):
    assert main(["teacher=resnet18", "student.name=resnet18", "image_size=64", "channels=3", "num_classes=3"]) == 0
    out = capsys.readouterr().out
    assert out.count("resnet18 (input [B, 3, 64, 64], 3 classes)") == 2
    assert out.startswith("teacher resnet18") and "\nstudent resnet18" in out
    assert "  layer3                 [B, 256, 4, 4]" in out
    assert "  fc                     [B, 3]" in out
    assert "layer1.0.relu          [B, 64, 16, 16]  (runs 2 times; the last output is used)" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "name a model"),
        (["resnet18"], "expected key=value"),
        (["model="], "expected key=value"),
        (["model=resnet18", "image_size=big"], "image_size must be a whole number"),
        (["model=resnet18", "channels=0"], "channels must be at least 1"),
        (["modle=resnet18"], "unknown argument 'modle'"),
        (["model=resnet18", "image_size=8", "channels=5"], "does not run on inputs"),
    ],
)
def test_bad_arguments_exit_2_with_one_error_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and message in captured.err and captured.err.count("\n") == 1


def test_help(capsys):
    assert main(["--help"]) == 0
    assert "python -m distill.layers teacher=resnet50 student=resnet18" in capsys.readouterr().out


def test_parse_args_defaults():
    models, settings = parse_args(["model=resnet18", "teacher=resnet50"])
    assert models == [("model", "resnet18"), ("teacher", "resnet50")]
    assert settings == {"image_size": 32, "channels": 3, "num_classes": 10}
    with pytest.raises(DistillError):
        parse_args(["image_size=32"])


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.act = nn.ReLU()
        self.unused = nn.Linear(2, 2)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8, 3))

    def forward(self, x):
        return self.head(self.act(self.act(self.conv(x))))


def test_layer_shapes_marks_repeated_and_unused_layers():
    rows = {name: (shape, calls) for name, shape, calls in layer_shapes(Net(), torch.zeros(2, 1, 4, 4))}
    assert list(rows) == ["conv", "act", "unused", "head", "head.0", "head.1"]
    assert rows["conv"] == ("[B, 2, 2, 2]", 1)
    assert rows["act"] == ("[B, 2, 2, 2]", 2)
    assert rows["unused"] == ("not called", 0)
    assert rows["head.0"] == ("[B, 8]", 1) and rows["head.1"] == ("[B, 3]", 1)
