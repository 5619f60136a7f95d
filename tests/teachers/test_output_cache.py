import json
import logging
import multiprocessing as mp
import threading

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from distill.data import TensorClassificationDataset
from distill.errors import DistillError
from distill.teachers import TeacherOutputCache

KEY = {"teacher_sha256": "abc", "data": {"name": "random"}, "split": "train"}


class CountingTeacher(nn.Module):
    """A small conv net that counts how many samples it has seen."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        self.seen = 0

    def forward(self, x):
        self.seen += len(x)
        return self.head(self.features(x))


def data(n=20, with_index=True):
    torch.manual_seed(1)
    return TensorClassificationDataset(torch.randn(n, 1, 6, 6), torch.randint(0, 3, (n,)), with_index=with_index)


def loader(n=20, batch_size=6, shuffle=False, with_index=True):
    return DataLoader(data(n, with_index), batch_size=batch_size, shuffle=shuffle)


def test_cached_rows_equal_the_teachers_outputs_and_features(tmp_path):
    teacher = CountingTeacher().eval()
    # a shuffled loader: rows are stored by sample index, not by arrival order
    cache = TeacherOutputCache.open_or_build(tmp_path, KEY, teacher, loader(shuffle=True), layers=["features"])
    assert cache.num_samples == 20 and cache.layers == ["features"]
    index = torch.tensor([19, 0, 7, 7])
    logits, features = cache.read(index)
    x = data().inputs[index]
    with torch.no_grad():
        expected_features = teacher.features(x)
        expected = teacher.head(expected_features)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(features["features"], expected_features, rtol=1e-5, atol=1e-6)
    assert logits.dtype == torch.float32


def test_second_open_skips_the_teacher_and_reads_memory_maps(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    teacher = CountingTeacher()
    TeacherOutputCache.open_or_build(tmp_path, KEY, teacher, loader())
    assert teacher.seen == 20
    cache = TeacherOutputCache.open_or_build(tmp_path, KEY, teacher, loader())
    assert teacher.seen == 20  # not run again
    assert isinstance(cache.logits, np.memmap)
    assert "read from the cache" in caplog.text


def test_a_different_key_never_opens_another_keys_cache(tmp_path):
    teacher = CountingTeacher()
    first = TeacherOutputCache.open_or_build(tmp_path, KEY, teacher, loader())
    other = TeacherOutputCache.open_or_build(tmp_path, {**KEY, "teacher_sha256": "def"}, teacher, loader())
    assert teacher.seen == 40 and first.directory != other.directory
    assert json.loads((other.directory / "meta.json").read_text())["key"]["teacher_sha256"] == "def"


def corrupt(directory):
    path = directory / "logits.npy"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # one flipped byte in the last row
    path.write_bytes(bytes(data))


def truncate(directory):
    path = directory / "logits.npy"
    path.write_bytes(path.read_bytes()[:100])


def unfinished(directory):
    (directory / "meta.json").unlink()  # as if the build was killed before its last write


def garbled_meta(directory):
    (directory / "meta.json").write_text("{not json")


@pytest.mark.parametrize("damage", [corrupt, truncate, unfinished, garbled_meta])
def test_damaged_cache_is_detected_and_rebuilt(tmp_path, caplog, damage):
    teacher = CountingTeacher()
    good = TeacherOutputCache.open_or_build(tmp_path, KEY, teacher, loader())
    expected = np.array(good.logits)
    damage(good.directory)
    caplog.set_level(logging.WARNING)
    rebuilt = TeacherOutputCache.open_or_build(tmp_path, KEY, teacher, loader())
    assert teacher.seen == 40
    assert str(good.directory) in caplog.text and "building it again" in caplog.text
    np.testing.assert_array_equal(np.array(rebuilt.logits), expected)


def test_batches_without_indices_are_refused(tmp_path):
    with pytest.raises(DistillError, match="needs sample indices"):
        TeacherOutputCache.open_or_build(tmp_path, KEY, CountingTeacher(), loader(with_index=False))
    assert not any(tmp_path.glob("*/meta.json"))


def test_a_loader_that_misses_samples_is_refused(tmp_path):
    partial = DataLoader(data(), batch_size=6, drop_last=True)  # 18 of 20 samples
    with pytest.raises(DistillError, match="covered 18 of 20"):
        TeacherOutputCache.open_or_build(tmp_path, KEY, CountingTeacher(), partial)
    # nothing half-built is left where a cache would be looked for
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_index_outside_the_cache_is_a_clear_error(tmp_path):
    cache = TeacherOutputCache.open_or_build(tmp_path, KEY, CountingTeacher(), loader())
    with pytest.raises(DistillError, match="sample index 20 is outside the teacher-output cache of 20 samples"):
        cache.read(torch.tensor([3, 20]))


def test_unwritable_root_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DistillError, match="cannot create the teacher-output cache directory"):
        TeacherOutputCache.open_or_build(blocker / "sub", KEY, CountingTeacher(), loader())


def _build_in_process(root, counter_path, barrier):
    teacher = CountingTeacher()
    barrier.wait()  # start together so that both want to build
    TeacherOutputCache.open_or_build(root, KEY, teacher, loader())
    with open(counter_path, "a") as handle:
        handle.write(f"{teacher.seen}\n")


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_two_processes_build_the_cache_once(tmp_path):
    context = mp.get_context("spawn")
    barrier = context.Barrier(2)
    counter = tmp_path / "seen.txt"
    processes = [context.Process(target=_build_in_process, args=(tmp_path / "cache", counter, barrier)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    # one process ran the teacher over the 20 samples, the other waited and opened the result
    assert sorted(int(line) for line in counter.read_text().split()) == [0, 20]


def test_threads_share_one_build(tmp_path):
    teachers = [CountingTeacher(), CountingTeacher()]
    threads = [threading.Thread(target=TeacherOutputCache.open_or_build, args=(tmp_path, KEY, t, loader())) for t in teachers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(t.seen for t in teachers) == [0, 20]
