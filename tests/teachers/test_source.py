import logging

import pytest
import torch

from distill.errors import DistillError
from distill.models import build_model
from distill.teachers import TeacherCache, prepare_teacher, spec_key

SPEC = {"model": "resnet18", "num_classes": 3, "seed": 1}


class CountingTrainer:
    def __init__(self):
        self.calls = 0

    def __call__(self, model):
        self.calls += 1
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.5)  # stands in for training: changes every weight


def test_trains_once_then_reuses_the_cache(tmp_path, caplog):
    cache, train = TeacherCache(tmp_path), CountingTrainer()
    caplog.set_level(logging.INFO)
    first = prepare_teacher("resnet18", 3, train=train, cache=cache, spec=SPEC)
    second = prepare_teacher("resnet18", 3, train=train, cache=cache, spec=SPEC)
    assert train.calls == 1
    assert (first.origin, second.origin) == ("trained", "cache")
    assert first.path == second.path and first.path.name == f"resnet18-{spec_key(SPEC)}.pt"
    assert first.path.with_suffix(".json").is_file()
    for key, value in first.model.state_dict().items():
        assert torch.equal(second.model.state_dict()[key], value)
    assert "trained and cached" in caplog.text and "reused from the cache" in caplog.text


def test_a_different_spec_trains_a_different_teacher(tmp_path):
    cache, train = TeacherCache(tmp_path), CountingTrainer()
    prepare_teacher("resnet18", 3, train=train, cache=cache, spec=SPEC)
    prepare_teacher("resnet18", 3, train=train, cache=cache, spec={**SPEC, "seed": 2})
    assert train.calls == 2


def test_a_corrupt_cached_teacher_is_trained_again(tmp_path, caplog):
    cache, train = TeacherCache(tmp_path), CountingTrainer()
    path = prepare_teacher("resnet18", 3, train=train, cache=cache, spec=SPEC).path
    path.write_bytes(path.read_bytes()[:100])
    again = prepare_teacher("resnet18", 3, train=train, cache=cache, spec=SPEC)
    assert train.calls == 2 and again.origin == "trained"
    assert "unusable" in caplog.text
    prepare_teacher("resnet18", 3, train=train, cache=cache, spec=SPEC)
    assert train.calls == 2


def test_no_temporary_files_are_left(tmp_path):
    prepare_teacher("resnet18", 3, train=CountingTrainer(), cache=TeacherCache(tmp_path), spec=SPEC)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_checkpoint_source(tmp_path):
    reference = build_model("resnet18", 3)
    torch.save(reference.state_dict(), tmp_path / "t.pt")
    teacher = prepare_teacher("resnet18", 3, checkpoint=str(tmp_path / "t.pt"))
    assert teacher.origin == "checkpoint" and str(tmp_path / "t.pt") in teacher.source
    assert torch.equal(teacher.model.fc.weight, reference.fc.weight)


def test_checkpoint_and_weights_together_is_an_error():
    with pytest.raises(DistillError, match="either a checkpoint .* or pretrained weights"):
        prepare_teacher("resnet18", 3, checkpoint="a.pt", weights="DEFAULT")


def test_unwritable_cache_directory(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(DistillError, match="cannot create the cache directory"):
        TeacherCache(blocked / "teachers")
