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


def test_depth_and_pairs_of_resnet18_and_resnet50_at_32(capsys):
    assert main(["teacher=resnet50", "student=resnet18", "depth=1", "pairs=true"]) == 0
    out = capsys.readouterr().out
    teacher, student, pairs = out.split("\n\n")
    assert "  layer1 " in student and "layer1.0" not in student and "layer1.0" not in teacher  # one name deep
    pair_lines = [line.split() for line in pairs.splitlines()[1:]]
    # worked by hand: conv1 (stride 2) 16x16, maxpool 8x8, layer1 8x8, layer2 4x4, layer3 2x2, layer4 and avgpool 1x1
    as_pairs = {(p[0], p[-5] if p[-5] != "=" else p[-4]) for p in pair_lines}
    assert ("layer1", "layer1") in as_pairs and ("layer1", "maxpool") in as_pairs
    assert ("layer3", "layer3") in as_pairs and ("layer2", "layer3") not in as_pairs
    same = [line for line in pairs.splitlines() if " = " in line]
    assert any(line.split()[0] == "layer1" and "maxpool [B, 64, 8, 8]" in line for line in same)  # 64 channels both
    assert not any(line.split()[0] == "layer3" and "layer3" in line.split("=")[-1] for line in same)  # 256 vs 1024
    assert any(line.split()[0] == "fc" and "= fc [B, 10]" in line for line in same)  # vectors pair with vectors
    assert ("fc", "layer4") not in as_pairs


def test_a_runs_overrides_list_its_models_on_a_batch_of_its_data(capsys):
    assert main(["data.image_size=16", "teacher=resnet18", "student=mobilenet_v3_small", "depth=1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("teacher resnet18 (input [B, 3, 16, 16] from DigitsDataModule)")
    assert "\nstudent mobilenet_v3_small (input [B, 3, 16, 16] from DigitsDataModule)" in out
    assert "  layer1   [B, 64, 4, 4]" in out  # 16 -> conv1 8 -> maxpool 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data.image_size=16", "image_size=32"], "'image_size=32' does not combine with a run's overrides"),
        (["model=resnet18", "depth=0"], "depth must be at least 1"),
        (["model=resnet18", "pairs=yes"], "pairs must be true or false"),
        (["model=resnet18", "pairs=true"], "pairs=true needs a teacher and a student"),
        (["data.image_sise=16"], "did you mean 'image_size'"),
    ],
)
def test_bad_view_and_run_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    captured = capsys.readouterr()
    assert exit_.value.code == 2 and captured.out == "" and message in captured.err and captured.err.count("\n") == 1
