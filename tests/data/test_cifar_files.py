import pickle
import time
import urllib.error

import numpy as np
import pytest
import torch

from distill.data import cifar_files
from distill.data.cifar_files import (
    CIFAR10_FILES,
    CIFAR100_FILES,
    check_present,
    download_files,
    read_batch,
    read_split,
)
from distill.errors import DistillError


def test_reads_what_was_written_in_file_order(tmp_path, fake_cifar):
    for variant, files in (("cifar10", CIFAR10_FILES), ("cifar100", CIFAR100_FILES)):
        written = fake_cifar(tmp_path / variant, variant)
        check_present(files, tmp_path / variant)
        for split in ("train", "test"):
            images, labels = read_split(files, tmp_path / variant, split)
            assert images.dtype == torch.uint8 and images.shape[1:] == (3, 32, 32)
            assert torch.equal(images, written[split][0]) and torch.equal(labels, written[split][1])


def test_pixel_layout_is_channel_planes(tmp_path):
    # CIFAR rows hold 1024 red, then 1024 green, then 1024 blue values, each plane row by row
    row = np.zeros(3072, dtype=np.uint8)
    row[5] = 1  # red, row 0, column 5
    row[1024 + 32 * 2 + 7] = 2  # green, row 2, column 7
    row[2048 + 32 * 31 + 31] = 3  # blue, bottom right
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": row[None], "labels": [4]}, protocol=2))
    images, labels = read_batch(CIFAR10_FILES, path)
    assert images[0, 0, 0, 5] == 1 and images[0, 1, 2, 7] == 2 and images[0, 2, 31, 31] == 3
    assert int(images.sum()) == 6 and labels.tolist() == [4]


@pytest.mark.parametrize("variant, files, bad", [("cifar10", CIFAR10_FILES, 10), ("cifar10", CIFAR10_FILES, -1), ("cifar100", CIFAR100_FILES, 100)])
def test_label_outside_the_classes(tmp_path, fake_cifar, variant, files, bad):
    fake_cifar(tmp_path, variant, bad_label=bad)
    with pytest.raises(DistillError, match=rf"1 label\(s\) outside 0..{files.num_classes - 1}, e.g. {bad} "):
        read_split(files, tmp_path, "train")


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "cannot read .* as a CIFAR-10 batch"),
        (pickle.dumps({"data": Payload(), "labels": []}, protocol=2), "refers to __builtin__.print, which a CIFAR batch never does"),
        (pickle.dumps(["not", "a", "dict"], protocol=2), "is not a CIFAR-10 batch"),
        (pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, protocol=2), "uint8 rows of 3072 pixels"),
        (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, protocol=2), "2 images but labels of shape"),
    ],
    ids=["empty", "arbitrary object", "not a dict", "wrong row size", "too few labels"],
)
def test_bad_files_are_clear_errors(tmp_path, capsys, content, message):
    path = tmp_path / "data_batch_1"
    path.write_bytes(content)
    with pytest.raises(DistillError, match=message) as error:
        read_batch(CIFAR10_FILES, path)
    assert "data.download=true" in str(error.value) and "\n" not in str(error.value)
    assert "this must never run" not in capsys.readouterr().out


def test_truncated_file(tmp_path, fake_cifar):
    fake_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DistillError, match="data_batch_3 as a CIFAR-10 batch"):
        read_split(CIFAR10_FILES, tmp_path, "train")


def test_missing_root_folder_and_file_say_where_and_how(tmp_path, fake_cifar):
    with pytest.raises(DistillError, match=r"data.root .*nowhere does not exist \(looking for CIFAR-10\); set data.root=DIR .*data.download=true"):
        check_present(CIFAR10_FILES, tmp_path / "nowhere")
    with pytest.raises(DistillError, match=r"CIFAR-100 not found: .*cifar-100-python does not exist; set data.root=DIR"):
        check_present(CIFAR100_FILES, tmp_path)
    fake_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DistillError, match="CIFAR-10 is incomplete: .* lacks data_batch_4; data.download=true"):
        check_present(CIFAR10_FILES, tmp_path)


def test_download_offline_is_one_clear_line(tmp_path, monkeypatch):
    calls = []

    def offline(url, root, filename, md5):
        calls.append((url, filename, md5))
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(cifar_files, "download_and_extract_archive", offline)
    with pytest.raises(DistillError, match=r"could not download CIFAR-10 from https://\S+cifar-10-python.tar.gz into .*Name or service not known.*data.download=false"):
        download_files(CIFAR10_FILES, tmp_path)
    assert calls == [(CIFAR10_FILES.source.url, "cifar-10-python.tar.gz", CIFAR10_FILES.source.tgz_md5)]


def test_download_is_skipped_when_the_files_are_there(tmp_path, fake_cifar, monkeypatch):
    fake_cifar(tmp_path, "cifar100")
    monkeypatch.setattr(cifar_files, "download_and_extract_archive", lambda *a, **k: pytest.fail("downloaded"))
    download_files(CIFAR100_FILES, tmp_path)


def test_a_stalled_download_times_out(tmp_path, monkeypatch):
    import socket
    import threading

    # a server that accepts the connection and never answers
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    monkeypatch.setattr(cifar_files, "DOWNLOAD_TIMEOUT", 1)
    monkeypatch.setattr(CIFAR10_FILES.source, "url", f"http://127.0.0.1:{server.getsockname()[1]}/cifar-10-python.tar.gz")
    started = time.monotonic()
    with pytest.raises(DistillError, match="could not download CIFAR-10 .*timed out"):
        download_files(CIFAR10_FILES, tmp_path)
    assert time.monotonic() - started < 30
    assert socket.getdefaulttimeout() is None  # restored
    server.close()
