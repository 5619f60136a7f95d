"""The feature terms' layer names are checked on both models before the teacher trains; the run is left as it was."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from distill.checks.feature_layers import check_feature_layers
from distill.errors import DistillError
from distill.losses import KD, FitNet

BATCH = (torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,)))


def test_a_missing_layer_on_either_model_is_named(make_cnn):
    with pytest.raises(DistillError, match=r"^student has no layer '9'"):
        check_feature_layers({"fitnet": FitNet("9", "0")}, make_cnn(), make_cnn(), BATCH)
    with pytest.raises(DistillError, match=r"^teacher has no layer 'layer9'"):
        check_feature_layers({"fitnet": FitNet("0", "layer9")}, make_cnn(), make_cnn(), BATCH)


def test_real_layers_pass_and_nothing_of_the_run_changes(make_cnn):
    student, teacher, term = make_cnn(), make_cnn(width=16), FitNet("0", "0")
    before = {k: v.clone() for k, v in student.state_dict().items()}
    state = torch.random.get_rng_state()
    check_feature_layers({"kd": KD(), "fitnet": term}, student, teacher, BATCH)  # the dry run builds a copy's adapter
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())
    assert not student._forward_hooks and not student[0]._forward_hooks  # no hook left on the run's student
    assert term.needs_build and not list(term.parameters())  # the run's own term is not built yet
    check_feature_layers({"kd": KD()}, student, teacher, BATCH)  # no feature term: nothing to check


@pytest.mark.slow  # a real command line (about 25 s on 2 busy cores)
def test_a_misspelt_teacher_layer_fails_before_the_teacher_trains(tmp_path):
    made = subprocess.run(
        [sys.executable, "-m", "distill.run", "teacher=resnet18", "student=resnet8", "data.image_size=8",
         "loss=[kd,fitnet]", "loss.ce.weight=0.1", "loss.fitnet.teacher_layer=layer9", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env={**os.environ, "DISTILL_CACHE_DIR": str(tmp_path / "cache")},
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert made.returncode == 2, made.stderr[-2000:]
    assert made.stderr.strip().splitlines()[-1].startswith("error: teacher has no layer 'layer9' (did you mean layer4")
    assert "[1/3]" not in made.stdout and not (tmp_path / "cache").exists()  # no teacher trained
