"""Checkpoints and caches that cannot poison a run: unreadable files are one line, cached teachers that are
unreadable or non-finite are trained again, locks say who holds them, killed saves leave nothing behind, a full
disk is one line and keeps the trained teacher, and identical weights give identical files."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import random
import subprocess
import sys
import threading
import time

import pytest
import torch
from torch import nn

from distill.cache_lock import cache_lock
from distill.errors import DistillError
from distill.io import DiskFullError, atomic_torch_save, atomic_write_text, remove_stale_temporaries
from distill.models.checkpoint import read_checkpoint
from distill.teachers import TeacherCache, prepare_teacher


def tiny_state(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3)).state_dict()


# -- read_checkpoint: every failure of torch.load is the one "cannot be read" line ---------------------------
def test_random_bytes_and_truncations_are_one_clear_line(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(tiny_state(), good)
    data = good.read_bytes()
    rng = random.Random(17)
    contents = [rng.randbytes(rng.randint(1, 3000)) for _ in range(150)]
    contents += [data[:n] for n in sorted({rng.randint(1, len(data) - 1) for _ in range(40)})]
    contents += [b"hello, I am a text file\n", b"PK\x03\x04 not really a zip", bytes(100), b"\x80\x02garbage"]
    # a real archive with bytes flipped in the middle
    for _ in range(20):
        flipped = bytearray(data)
        for _ in range(5):
            flipped[rng.randrange(len(flipped))] ^= 0xFF
        contents.append(bytes(flipped))
    path = tmp_path / "bad.pt"
    unreadable = 0
    for content in contents:
        path.write_bytes(content)
        try:
            read_checkpoint(path)
        except DistillError as error:
            text = str(error)
            assert "\n" not in text and str(path) in text
            assert "cannot be read" in text or "holds objects other than tensors" in text, text
            unreadable += "cannot be read" in text
        # a flipped byte inside a tensor's data still loads: that is the cache's sha256's job, not torch.load's
    assert unreadable >= 150


def test_a_text_file_is_not_a_key_error(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("e" * 200)
    with pytest.raises(DistillError, match="cannot be read: it is truncated, corrupt or not a PyTorch file"):
        read_checkpoint(path)


# -- byte-identical saves ------------------------------------------------------------------------------------
def test_identical_weights_give_byte_identical_files(tmp_path):
    a = atomic_torch_save(tiny_state(), tmp_path / "one" / "student.pt")
    time.sleep(1.1)  # a different second: no time stamp may enter the file
    b = atomic_torch_save(tiny_state(), tmp_path / "two" / "student.pt")
    c = atomic_torch_save(tiny_state(), tmp_path / "weights-under-another-name.pt")
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b, c)}
    assert len(digests) == 1
    assert hashlib.sha256(atomic_torch_save(tiny_state(seed=1), tmp_path / "x.pt").read_bytes()).hexdigest() not in digests


# -- stale temporary files -----------------------------------------------------------------------------------
def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_killed_save_leaves_no_temporary_behind_for_ever(tmp_path):
    target = tmp_path / "teacher.pt"
    import socket

    host = socket.gethostname().replace(".", "_")
    dead = tmp_path / f".teacher.pt.{host}.{_dead_pid()}.abc123.tmp"
    alive = tmp_path / f".teacher.pt.{host}.{os.getppid()}.def456.tmp"  # a running process's write
    old = tmp_path / ".teacher.pt.k2j3h4.tmp"  # the earlier naming, left a long time ago
    recent_other = tmp_path / ".teacher.pt.otherhost.1.ghi789.tmp"
    other_target = tmp_path / f".student.pt.{host}.{_dead_pid()}.jkl.tmp"
    for path in (dead, alive, old, recent_other, other_target):
        path.write_bytes(b"x" * 1000)
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    atomic_torch_save(tiny_state(), target)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([target.name, alive.name, recent_other.name, other_target.name])
    assert remove_stale_temporaries(tmp_path / "student.pt") == [other_target]


def test_a_killed_process_mid_save_is_cleaned_by_the_next_save(tmp_path):
    target = tmp_path / "big.pt"
    code = (
        "import os, torch, distill.io as io\n"
        "real = torch.save\n"
        "def save(obj, f):\n    f.write(b'x' * 100000); f.flush(); os._exit(9)\n"
        "torch.save = save\n"
        f"io.atomic_torch_save({{'w': torch.ones(3)}}, {str(target)!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False, env={**os.environ})
    assert list(tmp_path.glob(".big.pt.*.tmp")) and not target.exists()
    atomic_torch_save({"w": torch.ones(3)}, target)
    assert [p.name for p in tmp_path.iterdir()] == ["big.pt"]


# -- a full disk ---------------------------------------------------------------------------------------------
def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_one_line_naming_the_directory_and_the_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", _full_disk)
    state = {"w": torch.zeros(1000, 250)}  # 1,000,000 bytes of data
    with pytest.raises(DiskFullError) as raised:
        atomic_torch_save(state, tmp_path / "student.pt")
    text = str(raised.value)
    assert f"no space left in {tmp_path}" in text and "about 1.0 MB" in text and "\n" not in text
    assert isinstance(raised.value, DistillError)
    assert list(tmp_path.iterdir()) == []

    monkeypatch.undo()
    real_write = os.fdopen

    def text_full(fd, *a, **k):
        handle = real_write(fd, *a, **k)
        handle.write = _full_disk
        return handle

    monkeypatch.setattr(os, "fdopen", text_full)
    try:
        with pytest.raises(DiskFullError, match="about 5 bytes"):
            atomic_write_text(tmp_path / "a.txt", "hello")
    finally:
        monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_when_only_the_cache_is_full_the_trained_teacher_is_kept_in_the_run_dir(tmp_path, monkeypatch, caplog):
    cache = TeacherCache(tmp_path / "cache")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    real = atomic_torch_save

    def save(obj, path):
        if str(path).startswith(str(cache.root)):
            raise DiskFullError(cache.root, 1234, 0)
        return real(obj, path)

    monkeypatch.setattr("distill.teachers.cache.atomic_torch_save", save)
    trained = []
    with caplog.at_level(logging.WARNING):
        prepared = prepare_teacher("resnet8", 10, train=trained.append, cache=cache, spec={"x": 1}, keep_dir=run_dir)
    assert trained and prepared.origin == "trained" and prepared.path == run_dir / "teacher.pt"
    kept = torch.load(run_dir / "teacher.pt", weights_only=True)
    assert all(torch.equal(kept[k], v) for k, v in prepared.model.state_dict().items())
    assert "teacher.checkpoint=" in caplog.text and "cache is full" in caplog.text
    with pytest.raises(DiskFullError):  # without a run directory to keep it in, the line reaches the user
        prepare_teacher("resnet8", 10, train=lambda m: None, cache=cache, spec={"x": 2})


# -- cached teachers that cannot be used are trained again -----------------------------------------------
@pytest.mark.parametrize("damage", ["random", "text", "truncated", "nan", "inf"])
def test_an_unusable_cached_teacher_is_trained_again(tmp_path, damage, caplog):
    cache = TeacherCache(tmp_path)
    spec = {"model": "resnet8", "seed": 0}
    first = prepare_teacher("resnet8", 10, train=lambda m: None, cache=cache, spec=spec)
    path = first.path
    if damage == "random":
        path.write_bytes(random.Random(3).randbytes(5000))
    elif damage == "text":
        path.write_text("not weights")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:2000])
    else:
        state = torch.load(path, weights_only=True)
        state["fc.weight"][0, 0] = float(damage)
        torch.save(state, path)
    trained = []
    with caplog.at_level(logging.WARNING):
        again = prepare_teacher("resnet8", 10, train=trained.append, cache=cache, spec=spec)
    assert trained and again.origin == "trained"
    assert "unusable" in caplog.text and "training it again" in caplog.text
    if damage in ("nan", "inf"):
        assert "non-finite weights" in caplog.text and "fc.weight" in caplog.text
    assert prepare_teacher("resnet8", 10, train=trained.append, cache=cache, spec=spec).origin == "cache"


def test_a_teacher_trained_to_non_finite_weights_is_named_and_not_cached(tmp_path):
    cache = TeacherCache(tmp_path)

    def diverge(model):
        with torch.no_grad():
            model.fc.bias.fill_(float("nan"))

    with pytest.raises(DistillError, match="the teacher resnet8 trained now has non-finite weights .*fc.bias.*diverged"):
        prepare_teacher("resnet8", 10, train=diverge, cache=cache, spec={"a": 1})
    assert not list(tmp_path.glob("*.pt"))


def test_a_non_finite_teacher_checkpoint_is_named(tmp_path):
    from distill.models import build_model

    state = build_model("resnet8", 10).state_dict()
    state["stem.0.weight"][0] = float("nan")
    torch.save(state, tmp_path / "t.pt")
    with pytest.raises(DistillError, match=r"teacher checkpoint .*t.pt has non-finite weights \(1 tensor\(s\), e.g. stem.0.weight\)"):
        prepare_teacher("resnet8", 10, checkpoint=str(tmp_path / "t.pt"))


# -- locks -----------------------------------------------------------------------------------------------------
def test_a_held_lock_names_its_holder_and_gives_up_after_the_timeout(tmp_path, caplog):
    target = tmp_path / "teacher.pt"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from distill.cache_lock import cache_lock\n"
         f"with cache_lock(Path({str(target)!r}), 'x', timeout=0):\n"
         "    print('held', flush=True); time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with caplog.at_level(logging.WARNING), pytest.raises(DistillError) as raised:
            with cache_lock(target, "the cached teacher", timeout=1.0):
                pass
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert 0.9 <= waited < 30
    assert f"lock {target}.lock held by pid {holder.pid}" in caplog.text
    assert f"gave up after 1 s waiting for the cached teacher: lock {target}.lock is held by pid {holder.pid}" in str(raised.value)
    with cache_lock(target, "the cached teacher", timeout=1.0):  # the holder is gone: the lock is free
        assert (tmp_path / "teacher.pt.lock.owner").read_text().split()[0] == str(os.getpid())
    assert not (tmp_path / "teacher.pt.lock.owner").exists()


def test_a_waiter_gets_the_lock_when_the_holder_finishes(tmp_path):
    target = tmp_path / "t"
    order = []

    def hold():
        with cache_lock(target, "x"):
            order.append("first")
            time.sleep(0.5)
        order.append("released")

    thread = threading.Thread(target=hold)
    thread.start()
    time.sleep(0.1)
    with cache_lock(target, "x", timeout=20):
        order.append("second")
    thread.join()
    assert order == ["first", "released", "second"]


def test_the_lock_timeout_comes_from_the_environment(monkeypatch):
    from distill.cache_lock import lock_timeout

    monkeypatch.setenv("DISTILL_LOCK_TIMEOUT", "12.5")
    assert lock_timeout() == 12.5
    monkeypatch.setenv("DISTILL_LOCK_TIMEOUT", "soon")
    with pytest.raises(DistillError, match="DISTILL_LOCK_TIMEOUT='soon' must be a number of seconds"):
        lock_timeout()
