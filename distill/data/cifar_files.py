"""CIFAR-10/100 on disk, in the layout torchvision downloads: finding, downloading and reading the batches.

The batches are Python pickles. They are read with an unpickler that builds
nothing but NumPy arrays, lists, numbers and strings, so a tampered file
cannot run code; and without torchvision's dataset classes, so that a file
with a wrong label or a missing file is a clear error rather than a checksum
mismatch.
"""

from __future__ import annotations

import pickle
import socket
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchvision.datasets import CIFAR10, CIFAR100
from torchvision.datasets.utils import download_and_extract_archive

from distill.errors import DistillError, first_line

#: seconds a stalled connection may stay silent before the download gives up
DOWNLOAD_TIMEOUT = 60


@dataclass(frozen=True)
class CIFARFiles:
    """Where one CIFAR variant's files are and what they hold; names and URL are torchvision's."""

    title: str
    source: type  # the torchvision class whose url, filename, base_folder and file lists these are
    label_key: str
    num_classes: int

    @property
    def folder(self) -> str:
        return self.source.base_folder

    def names(self, split: str) -> list[str]:
        return [name for name, _md5 in (self.source.train_list if split == "train" else self.source.test_list)]


CIFAR10_FILES = CIFARFiles("CIFAR-10", CIFAR10, "labels", 10)
CIFAR100_FILES = CIFARFiles("CIFAR-100", CIFAR100, "fine_labels", 100)


def missing_files(files: CIFARFiles, root: Path) -> list[str]:
    return [name for split in ("train", "test") for name in files.names(split) if not (root / files.folder / name).is_file()]


def check_present(files: CIFARFiles, root: Path) -> None:
    """Raise a :class:`DistillError` that says where it looked and how to fix it, unless all files are there."""
    get = f"set data.root=DIR to the directory that holds {files.folder}/, or data.download=true to download {files.title} (about 170 MB)"
    if not root.is_dir():
        raise DistillError(f"data.root {root} does not exist (looking for {files.title}); {get}")
    if not (root / files.folder).is_dir():
        raise DistillError(f"{files.title} not found: {root / files.folder} does not exist; {get} into {root}")
    missing = missing_files(files, root)
    if missing:
        raise DistillError(
            f"{files.title} is incomplete: {root / files.folder} lacks {', '.join(missing)}; "
            "data.download=true downloads it again"
        )


def download_files(files: CIFARFiles, root: Path) -> None:
    """Download and extract ``files`` into ``root`` unless they are there; an offline machine gets one clear line."""
    if not missing_files(files, root):
        return
    url, archive = files.source.url, files.source.filename
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)  # urllib waits forever on a stalled connection otherwise
    try:
        download_and_extract_archive(url, str(root), filename=archive, md5=files.source.tgz_md5)
    except (OSError, RuntimeError, tarfile.TarError) as error:  # URLError is an OSError
        reason = first_line(error)
        raise DistillError(
            f"could not download {files.title} from {url} into {root} ({reason}); check the network, "
            f"or fetch {archive} elsewhere, extract it into {root} and set data.download=false"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    check_present(files, root)


class _ArrayUnpickler(pickle.Unpickler):
    """Builds NumPy arrays and plain Python values; refuses every other class."""

    ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"),  # written by older NumPy (the published files)
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    })

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR batch never does")
        return super().find_class(module, name)


def read_batch(files: CIFARFiles, path: Path) -> tuple[Tensor, Tensor]:
    """One batch file as uint8 images ``[N, 3, 32, 32]`` and int64 labels ``[N]``, checked."""
    fix = f"delete {path.parent} and set data.download=true to download {files.title} again"
    try:
        with open(path, "rb") as handle:
            entry = _ArrayUnpickler(handle, encoding="latin1").load()
    except Exception as error:  # noqa: BLE001 (a corrupt pickle fails in many ways; all mean the same here)
        reason = first_line(error)
        raise DistillError(f"cannot read {path} as a {files.title} batch ({reason}); {fix}") from None
    if not isinstance(entry, dict) or "data" not in entry or files.label_key not in entry:
        raise DistillError(f"{path} is not a {files.title} batch (no 'data' and '{files.label_key}' entries); {fix}")
    data = entry["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        shape = getattr(data, "shape", None)
        raise DistillError(f"{path}: 'data' must be uint8 rows of 3072 pixels, got {type(data).__name__} {shape}; {fix}")
    labels = np.asarray(entry[files.label_key])
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise DistillError(f"{path}: {len(data)} images but labels of shape {labels.shape} ({labels.dtype}); {fix}")
    outside = labels[(labels < 0) | (labels >= files.num_classes)]
    if outside.size:
        raise DistillError(
            f"{path}: {outside.size} label(s) outside 0..{files.num_classes - 1}, e.g. {int(outside[0])} "
            f"({files.title} has {files.num_classes} classes); {fix}"
        )
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels.astype(np.int64))


def read_split(files: CIFARFiles, root: Path, split: str) -> tuple[Tensor, Tensor]:
    """All batches of ``split`` ("train" or "test"), concatenated in torchvision's order."""
    parts = [read_batch(files, root / files.folder / name) for name in files.names(split)]
    return torch.cat([images for images, _ in parts]), torch.cat([labels for _, labels in parts])
