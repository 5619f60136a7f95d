"""The teacher-output cache never keeps non-finite outputs, and a killed build leaves nothing behind for ever."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from distill.data import TensorClassificationDataset
from distill.errors import DistillError
from distill.teachers import TeacherOutputCache

KEY = {"teacher_sha256": "abc", "data": {"name": "random"}, "split": "train"}


class Teacher(nn.Module):
    def __init__(self, bad_sample=None):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(36, 3))
        self.bad_sample, self.seen = bad_sample, 0

    def forward(self, x):
        out = self.net(x)
        if self.bad_sample is not None and self.seen <= self.bad_sample < self.seen + len(x):
            out[self.bad_sample - self.seen, 1] = float("inf")  # an overflow on one sample
        self.seen += len(x)
        return out


def loader(n=20):
    torch.manual_seed(1)
    return DataLoader(TensorClassificationDataset(torch.randn(n, 1, 6, 6), torch.randint(0, 3, (n,)), with_index=True),
                      batch_size=6)


@pytest.mark.parametrize("bad_sample", [0, 7, 19])
def test_non_finite_teacher_outputs_name_the_teacher_and_are_not_cached(tmp_path, bad_sample):
    with pytest.raises(DistillError, match=r"the teacher's outputs \(logits.npy\) on the training set are non-finite: the teacher is the cause"):
        TeacherOutputCache.open_or_build(tmp_path, KEY, Teacher(bad_sample), loader())
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # neither a cache nor its temporary build
    assert TeacherOutputCache.open_or_build(tmp_path, KEY, Teacher(), loader()).num_samples == 20


def test_a_cache_holding_non_finite_values_is_rebuilt(tmp_path, caplog):
    cache = TeacherOutputCache.open_or_build(tmp_path, KEY, Teacher(), loader())
    expected = np.array(cache.logits)
    logits = np.array(cache.logits)
    logits[3, 0] = np.nan
    np.save(cache.directory / "logits.npy", logits)
    meta = json.loads((cache.directory / "meta.json").read_text())
    meta["sha256"] = {}  # as if the hashes matched: the values themselves are checked
    (cache.directory / "meta.json").write_text(json.dumps(meta))
    caplog.set_level(logging.WARNING)
    rebuilt = TeacherOutputCache.open_or_build(tmp_path, KEY, Teacher(), loader())
    assert "non-finite values" in caplog.text and "building it again" in caplog.text
    np.testing.assert_array_equal(np.array(rebuilt.logits), expected)


def test_a_killed_build_leaves_no_temporary_directory_for_ever(tmp_path):
    first = TeacherOutputCache.open_or_build(tmp_path, KEY, Teacher(), loader())
    leftover = tmp_path / f".{first.directory.name}.k1ll3d.tmp"
    (leftover / "features").mkdir(parents=True)
    (leftover / "logits.npy").write_bytes(b"x" * 10000)
    other = tmp_path / ".another-key.abc.tmp"  # another key's build may still be running: not touched
    other.mkdir()
    TeacherOutputCache.open_or_build(tmp_path, KEY, Teacher(), loader())
    assert not leftover.exists() and other.exists()
