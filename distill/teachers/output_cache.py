"""Teacher outputs computed once per training set and read back by sample index.

A frozen teacher gives the same outputs for the same input, so when the
training inputs do not change between epochs (no random augmentation) its
forward pass is pure overhead after the first epoch. The cache holds the
teacher's logits (and the features a loss term reads) for every training
sample in ``.npy`` files that are memory-mapped, so a run reads only the rows
of its batch and never holds the whole set in memory.

Layout: ``<root>/<key>/`` with ``logits.npy``, ``features/<layer>.npy`` and
``meta.json`` (what the cache was built from, array shapes and file hashes).
``meta.json`` is written last, so a directory without it is an unfinished
build; directories are built under a temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from distill.batch import Batch, forward_logits, split_batch
from distill.cache_lock import cache_lock
from distill.errors import DistillError
from distill.features import FeatureCapture
from distill.io import _umask, atomic_write_text
from distill.teachers.cache import spec_key

log = logging.getLogger(__name__)

#: bump when the layout changes, so old caches are rebuilt rather than misread
FORMAT_VERSION = 1


class TeacherOutputCache:
    """Read-only, memory-mapped teacher outputs for the samples ``0 .. num_samples-1``.

    Build or open one with :meth:`open_or_build`. :meth:`read` returns the
    logits and features of a batch by sample index; :meth:`prefetch` and
    :meth:`outputs` serve a training step the way the live teacher does
    (:class:`~distill.teachers.live_teacher.TeacherOnBatch`).
    """

    def __init__(self, directory: Path, meta: Mapping[str, Any]) -> None:
        self.directory = directory
        self.meta = dict(meta)
        self.logits = np.load(directory / "logits.npy", mmap_mode="r")
        self.features = {
            layer: np.load(directory / "features" / f"{_file_name(layer)}.npy", mmap_mode="r")
            for layer in meta["layers"]
        }

    @property
    def num_samples(self) -> int:
        return int(self.logits.shape[0])

    @property
    def layers(self) -> list[str]:
        return list(self.features)

    def read(self, index: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The teacher's logits and features for the samples ``index`` (a 1-D integer tensor)."""
        rows = index.detach().cpu().numpy()
        if rows.size and (rows.min() < 0 or rows.max() >= self.num_samples):
            raise DistillError(
                f"sample index {int(rows.max()) if rows.max() >= self.num_samples else int(rows.min())} "
                f"is outside the teacher-output cache of {self.num_samples} samples ({self.directory}); "
                "the training data changed without changing its fingerprint: delete the cache directory"
            )
        # fancy indexing copies just these rows out of the memory map
        logits = torch.from_numpy(self.logits[rows])
        features = {layer: torch.from_numpy(array[rows]) for layer, array in self.features.items()}
        return logits, features

    def prefetch(self, index: Tensor | None) -> None:
        """Read the rows of the next batch while its indices are still on the host (no host sync on a GPU)."""
        self._prefetched = None if index is None else self.read(index)

    def outputs(self, parts: Batch, device: torch.device, first_batch: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        """The cached logits and features of the batch's samples, on ``device`` (prefetched rows when there are)."""
        if parts.index is None:
            raise DistillError(
                "training with a teacher-output cache needs sample indices in each training batch; "
                "build the data module with with_index=True"
            )
        rows, self._prefetched = getattr(self, "_prefetched", None), None
        logits, features = rows if rows is not None else self.read(parts.index)
        moved = {layer: value.to(device, non_blocking=True) for layer, value in features.items()}
        return logits.to(device, non_blocking=True), moved

    # -- building and opening ------------------------------------------------------
    @classmethod
    def open_or_build(
        cls,
        root: str | os.PathLike,
        key: Mapping[str, Any],
        teacher: nn.Module,
        dataloader: Iterable[Any],
        layers: Iterable[str] = (),
        device: torch.device | str | None = None,
    ) -> TeacherOutputCache:
        """The cache for ``key`` under ``root``: opened if a complete, intact one exists, else built.

        Args:
            root: the directory that holds the caches.
            key: a JSON-able description of everything the outputs depend on: the
                teacher's weights (hash), the data set and split, the eval-time
                transform. A different key never opens another key's cache.
            teacher: the frozen teacher (run in eval mode under ``torch.inference_mode``).
            dataloader: the training split in any order, without random augmentation,
                yielding batches with sample indices (``(x, y, index)`` or a mapping
                with ``"index"``); every index in ``0 .. N-1`` must appear once.
            layers: names of teacher layers whose outputs are cached too.
            device: where the teacher runs while building (default: where its weights are).
        """
        layers = list(dict.fromkeys(layers))
        full_key = {"format": FORMAT_VERSION, "layers": layers, **key}
        root = Path(root).expanduser()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DistillError(
                f"cannot create the teacher-output cache directory {root} ({error.strerror}); "
                "set cache_dir=PATH to a writable directory"
            ) from None
        directory = root / spec_key(full_key)
        # one builder at a time: DDP ranks and sweep jobs wait here and then open the finished cache
        with cache_lock(directory, f"the teacher-output cache {directory.name}"):
            _remove_unfinished_builds(directory)  # only the lock holder builds: any other is a killed build
            problem = _check(directory, full_key)
            if problem is None:
                log.info("Teacher outputs read from the cache %s", directory)
                return cls(directory, json.loads((directory / "meta.json").read_text()))
            if problem != "missing":
                log.warning("Teacher-output cache %s is unusable (%s); building it again", directory, problem)
            _build(directory, full_key, teacher, dataloader, layers, device)
            return cls(directory, json.loads((directory / "meta.json").read_text()))


def _remove_unfinished_builds(directory: Path) -> None:
    for leftover in directory.parent.glob(f".{directory.name}.*.tmp"):
        log.info("Removing %s, left by a build that was stopped", leftover)
        shutil.rmtree(leftover, ignore_errors=True)


def _file_name(layer: str) -> str:
    return layer.replace("/", "_") or "_"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check(directory: Path, key: Mapping[str, Any]) -> str | None:
    """None if ``directory`` holds a complete cache for ``key``; else what is wrong with it."""
    meta_path = directory / "meta.json"
    if not directory.exists():
        return "missing"
    if not meta_path.is_file():
        return "no meta.json: an unfinished build"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as error:
        return f"meta.json unreadable: {error}"
    if meta.get("key") != json.loads(json.dumps(key, sort_keys=True, default=str)):
        return "built from something else (its key differs)"
    for name, expected in meta.get("sha256", {}).items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if _sha256(path) != expected:
            return f"{name} is corrupt (its sha256 differs from meta.json)"
    try:
        finite = bool(np.isfinite(np.load(directory / "logits.npy", mmap_mode="r")).all())
    except (OSError, ValueError) as error:
        return f"logits.npy unreadable: {error}"
    if not finite:
        return "logits.npy holds non-finite values"
    return None


def _build(
    directory: Path,
    key: Mapping[str, Any],
    teacher: nn.Module,
    dataloader: Iterable[Any],
    layers: list[str],
    device: torch.device | str | None,
) -> None:
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".tmp"))
    try:
        arrays = _compute(tmp, teacher, dataloader, layers, device)
        for name, array in arrays.items():
            if not np.isfinite(array).all():
                raise DistillError(
                    f"the teacher's outputs ({name}) on the training set are non-finite: the teacher is the cause "
                    "(diverged or corrupt weights, or an overflow in its dtype); nothing was cached"
                )
        meta = {
            "key": json.loads(json.dumps(key, sort_keys=True, default=str)),
            "layers": layers,
            "num_samples": int(arrays["logits.npy"].shape[0]),
            "shapes": {name: list(array.shape) for name, array in arrays.items()},
            "sha256": {name: _sha256(tmp / name) for name in arrays},
        }
        atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=2, sort_keys=True))
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a shared cache is readable like other files
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
        log.info("Teacher outputs for %d samples cached at %s", meta["num_samples"], directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _compute(
    tmp: Path, teacher: nn.Module, dataloader: Iterable[Any], layers: list[str], device: torch.device | str | None
) -> dict[str, np.ndarray]:
    """Run the teacher over the loader, writing each batch's rows straight into ``.npy`` memory maps."""
    count = _num_samples(dataloader)
    if device is None:
        device = next((p.device for p in teacher.parameters()), torch.device("cpu"))
    was_training = teacher.training
    teacher.eval()
    capture = FeatureCapture(teacher, layers, "teacher") if layers else None
    arrays: dict[str, np.ndarray] = {}
    seen = np.zeros(count, dtype=bool)
    (tmp / "features").mkdir()
    try:
        with torch.inference_mode():
            for batch in dataloader:
                parts = split_batch(batch)
                if parts.index is None:
                    raise DistillError(
                        "the teacher-output cache needs sample indices in each batch; "
                        "build the data module with with_index=True"
                    )
                parts.args = tuple(_to(a, device) for a in parts.args)
                parts.kwargs = {k: _to(v, device) for k, v in parts.kwargs.items()}
                outputs = {"logits.npy": forward_logits(teacher, parts)}
                for layer, value in (capture.collect() if capture else {}).items():
                    outputs[f"features/{_file_name(layer)}.npy"] = value
                rows = parts.index.cpu().numpy()
                if rows.min() < 0 or rows.max() >= count or seen[rows].any():
                    raise DistillError(
                        f"the cache loader yielded sample index {int(rows.max())} out of 0..{count - 1} or "
                        "twice; cache_dataloader() must cover the training split once, with its sample indices"
                    )
                seen[rows] = True
                for name, value in outputs.items():
                    value = value.float().cpu().numpy()
                    if name not in arrays:  # shapes are known from the first batch
                        arrays[name] = np.lib.format.open_memmap(
                            tmp / name, mode="w+", dtype=np.float32, shape=(count, *value.shape[1:])
                        )
                    arrays[name][rows] = value
    finally:
        if capture:
            capture.remove()
        teacher.train(was_training)
    if not seen.all():
        raise DistillError(
            f"the cache loader covered {int(seen.sum())} of {count} training samples; "
            "cache_dataloader() must yield every sample of the training split (drop_last=False)"
        )
    for array in arrays.values():
        array.flush()
    return arrays


def _num_samples(dataloader: Iterable[Any]) -> int:
    dataset = getattr(dataloader, "dataset", None)
    try:
        count = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise DistillError(
            "the teacher-output cache needs a DataLoader over a sized (map-style) training set"
        ) from None
    if count == 0:
        raise DistillError("the training data is empty: there is nothing to cache teacher outputs for")
    return count


def _to(value: Any, device: torch.device | str) -> Any:
    return value.to(device) if isinstance(value, Tensor) else value
