"""A language-model teacher's top-k next-token distributions, cached on disk and read back by example index.

Write-through: while the cache is incomplete, a training batch with an example
not cached yet runs the teacher, and the top-k ids, log-probabilities and tail
mass of its loss-carrying tokens are stored; batches whose examples are all
cached read them instead (the teacher is not called). The first epoch fills the
cache, later epochs (and later runs) read it. Every batch, filled or read, gets
the values as stored (rounded to the storage dtype), so every epoch trains on
the same targets.

The cache is built in a hidden temporary directory beside its place, under the
cache lock (:func:`~distill.cache_lock.cache_lock`, held until it is complete),
and renamed into place with its ``manifest.json`` once every example is in it:
a run stopped early leaves no partial cache that could be read as complete, and
two runs never write one cache. A cache whose manifest differs from the run's
(teacher, tokenizer, chat template, data, temperature, k, ...) is refused with a
one-line error (:func:`~distill.teachers.lm_manifest.check_manifest`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from distill.batch import Batch, split_batch
from distill.cache_lock import cache_lock
from distill.errors import DistillError
from distill.io import _umask, atomic_write_text
from distill.lm.tokens import loss_positions, next_token_targets
from distill.losses.functional.token_topk import TeacherTopK, teacher_topk
from distill.teachers.lm_manifest import check_manifest
from distill.teachers.live_teacher import LiveTeacher
from distill.teachers.topk_format import round_trip
from distill.teachers.topk_store import FILES, TopKStore

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
           "float32": torch.float32}


class TopKTeacherCache:
    """The teacher's top-k next-token distributions on the training examples: read, or filled as training runs.

    Open one with :meth:`open` and use it as a context manager around training
    (``with cache: trainer.fit(...)``), handing it to
    :class:`~distill.DistillationModule` as ``teacher_outputs``. Its
    :meth:`outputs` give a :class:`~distill.losses.functional.token_topk.TeacherTopK`
    of ``[B, T, k]`` tensors, which the token divergence terms with ``top_k = k``
    and the same temperature read (top-k buckets plus the exact tail).

    Attributes:
        origin: ``"reused"`` (complete when opened) or ``"filled"`` (filled by this run).
        teacher_batches: training batches on which the teacher was run to fill the cache.
    """

    def __init__(self, directory: Path, manifest: Mapping[str, Any], store: TopKStore, *, complete: bool,
                 live: LiveTeacher | None, lock: contextlib.ExitStack | None, building: Path | None) -> None:
        self.directory, self.manifest, self.store = directory, dict(manifest), store
        self.k, self.temperature = int(manifest["top_k"]), float(manifest["temperature"])
        self.complete, self.origin = complete, "reused" if complete else "filled"
        self.teacher_batches = 0
        self._live, self._lock, self._building = live, lock, building
        self._filled = np.full(store.num_examples, complete, dtype=bool)
        self._prefetched: tuple[Tensor, Tensor, Tensor, np.ndarray] | None = None

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, directory: str | os.PathLike, manifest: Mapping[str, Any], token_counts: Sequence[int],
             teacher: nn.Module | None = None, teacher_dtype: str | torch.dtype | None = None) -> TopKTeacherCache:
        """The cache at ``directory``: read if complete and built from ``manifest``, else laid out to be filled.

        Args:
            directory: where the cache lives (created when missing).
            manifest: this run's manifest (:func:`~distill.teachers.lm_manifest.lm_cache_manifest`);
                a complete cache built from anything else is a :class:`~distill.errors.DistillError`.
            token_counts: the number of loss-carrying tokens of each training example, by index.
            teacher: the frozen teacher that fills an incomplete cache (``None``: the cache must be complete).
            teacher_dtype: the dtype the teacher runs in (as ``DistillationModule``'s ``teacher_dtype``).
        """
        directory = Path(directory).expanduser()
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DistillError(f"cannot create {directory.parent} ({error.strerror}); give teacher.cache_dir=A_WRITABLE_DIR") from None
        if len(token_counts) != manifest["num_examples"] or sum(token_counts) != manifest["num_tokens"]:
            raise DistillError("token_counts do not match the manifest's num_examples/num_tokens; build both from the same examples")
        lock = contextlib.ExitStack()
        lock.enter_context(cache_lock(directory, f"the top-k teacher cache {directory.name}"))
        try:
            _remove_unfinished_builds(directory)  # only the lock holder builds: any other is a stopped build
            problem = _problem(directory, manifest)
            if problem is None:
                lock.close()  # a complete cache is only read: other runs may read it too
                store = TopKStore(directory, manifest["top_k"], manifest["vocabulary"], manifest["log_prob_dtype"])
                log.info("Teacher top-%d outputs read from the cache %s (%.1f bytes/token)", manifest["top_k"],
                         directory, store.file_bytes() / max(store.num_tokens, 1))
                return cls(directory, manifest, store, complete=True, live=None, lock=None, building=None)
            if problem != "missing":
                log.warning("Top-k teacher cache %s is unusable (%s); filling it again", directory, problem)
            if teacher is None:
                raise DistillError(f"the top-k teacher cache {directory} is not complete and no teacher was given to fill it")
            building = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".tmp"))
            store = TopKStore.create(building, token_counts, manifest["top_k"], manifest["vocabulary"],
                                     manifest["log_prob_dtype"])
            live = LiveTeacher(teacher, None, _DTYPES[teacher_dtype] if isinstance(teacher_dtype, str) else teacher_dtype)
            log.info("Teacher top-%d outputs will be cached at %s as the first epoch runs", manifest["top_k"], directory)
            return cls(directory, manifest, store, complete=False, live=live, lock=lock, building=building)
        except BaseException:
            lock.close()
            raise

    # -- what a training step reads (distill.teachers.live_teacher.TeacherOnBatch) ----------------
    def prefetch(self, index: Tensor | None) -> None:
        """Read the rows of the next batch while its indices are still on the host, when they are all cached."""
        self._prefetched = None
        if index is not None:
            examples = index.detach().cpu().numpy()
            if self._filled[examples].all():
                self._prefetched = self.store.read(examples)

    def outputs(self, parts: Batch, device: torch.device, first_batch: bool = False) -> tuple[TeacherTopK, dict[str, Tensor]]:
        """The batch's teacher distributions as ``[B, T, k]`` top-k buckets on ``device`` (no teacher layers)."""
        if parts.index is None or parts.labels is None:
            raise DistillError(
                "the top-k teacher cache needs each training batch's example indices and labels; "
                "build the data module with with_index=True and labels"
            )
        rows, self._prefetched = self._prefetched, None
        if rows is None:
            examples = parts.index.detach().cpu().numpy()
            rows = self.store.read(examples) if self._filled[examples].all() else self._fill(parts, device, first_batch)
        return self._buckets(rows, parts.labels, device), {}

    def fill(self, dataloader: Iterable[Any], device: torch.device | str | None = None) -> None:
        """Fill the cache ahead of training from ``dataloader`` (the training examples with their indices)."""
        if self._live is None:
            return
        device = torch.device(device) if device is not None else next(
            (p.device for p in self._live.model.parameters()), torch.device("cpu"))
        for batch in dataloader:
            if self.complete:
                break
            parts = split_batch(batch)
            parts.kwargs = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in parts.kwargs.items()}
            parts.args = tuple(a.to(device) if isinstance(a, Tensor) else a for a in parts.args)
            self.outputs(parts, device, first_batch=self.teacher_batches == 0)
        if not self.complete:
            raise DistillError(
                f"the loader covered {int(self._filled.sum())} of {len(self._filled)} training examples; it must "
                "yield every training example once, with its index"
            )

    # -- size ---------------------------------------------------------------------------------
    @property
    def num_tokens(self) -> int:
        return self.store.num_tokens

    def bytes_per_token(self) -> float | None:
        """Bytes on disk per cached token, measured from the array files (headers and offsets included).

        None for a cache that was not completed: :meth:`close` removed its files, so there is nothing to measure.
        """
        if not self.complete:
            return None
        return self.store.file_bytes() / max(self.store.num_tokens, 1)

    # -- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        """End the run's use: an incomplete cache is removed (never kept as if complete) and the lock released."""
        if self._building is not None and not self.complete:
            log.info("Top-k teacher cache %s not kept: %d of %d examples were filled (an epoch that did not cover "
                     "them all)", self.directory, int(self._filled.sum()), len(self._filled))
            shutil.rmtree(self._building, ignore_errors=True)
            self._building = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> TopKTeacherCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- inside ---------------------------------------------------------------------------------
    def _fill(self, parts: Batch, device: torch.device, first_batch: bool) -> tuple[Tensor, Tensor, Tensor, np.ndarray]:
        """Run the teacher on the batch, store its examples not cached yet, and return the rows as stored."""
        if self._live is None:
            raise DistillError(f"the top-k teacher cache {self.directory} misses examples and has no teacher to fill them")
        logits, _ = self._live.outputs(parts, device, first_batch)
        self.teacher_batches += 1
        labels = parts.labels
        rows, _ = loss_positions(labels)
        top = teacher_topk(logits.reshape(-1, logits.shape[-1])[rows], self.k, self.temperature)
        ids, log_probs = top.ids.cpu(), round_trip(top.log_probs, self.manifest["log_prob_dtype"]).cpu()
        tail = top.tail_log_mass.float().cpu()
        _, mask = next_token_targets(labels)
        counts = mask.sum(1).cpu().numpy()
        examples = parts.index.detach().cpu().numpy()
        start = 0
        for example, count in zip(examples.tolist(), counts.tolist()):
            if not self._filled[example]:
                stop = start + count
                self.store.write(example, ids[start:stop], log_probs[start:stop], tail[start:stop])
                self._filled[example] = True
            start += count
        if self._filled.all():
            self._finish()
        return ids, log_probs, tail, counts

    def _buckets(self, rows: tuple[Tensor, Tensor, Tensor, np.ndarray], labels: Tensor, device: torch.device) -> TeacherTopK:
        ids, log_probs, tail, counts = rows
        _, mask = next_token_targets(labels)
        if not np.array_equal(mask.sum(1).cpu().numpy(), counts):
            raise DistillError(
                f"the batch's loss masks do not match the top-k teacher cache {self.directory} (tokens per example "
                f"{mask.sum(1).tolist()} vs cached {counts.tolist()}): the data changed; give teacher.cache_dir=NEW_DIR"
            )
        where = torch.nn.functional.pad(mask, (0, 1)).to(device)  # [B, T]: the logits at t predict token t + 1
        batch, length = labels.shape
        out_ids = torch.zeros(batch, length, self.k, dtype=torch.long, device=device)
        out_log_probs = torch.zeros(batch, length, self.k, dtype=torch.float32, device=device)
        out_tail = torch.zeros(batch, length, dtype=torch.float32, device=device)
        out_ids[where], out_log_probs[where], out_tail[where] = ids.to(device), log_probs.to(device), tail.to(device)
        return TeacherTopK(out_ids, out_log_probs, out_tail, temperature=self.temperature)

    def _finish(self) -> None:
        """Every example is in: write the manifest, move the cache into place, read it from there, release the lock."""
        building = self._building
        self.store.flush()
        sizes = {name: (building / name).stat().st_size for name in FILES}
        atomic_write_text(building / MANIFEST, json.dumps({**self.manifest, "files": sizes}, indent=2, sort_keys=True))
        building.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a shared cache is readable like other files
        if self.directory.exists():
            shutil.rmtree(self.directory)  # an unusable cache, checked under the lock we hold
        os.replace(building, self.directory)
        self._building = None
        self.store = TopKStore(self.directory, self.k, self.manifest["vocabulary"], self.manifest["log_prob_dtype"])
        self.complete = True
        log.info("Teacher top-%d outputs of %d examples cached at %s (%.1f bytes/token)", self.k,
                 self.store.num_examples, self.directory, self.bytes_per_token())
        self.close()


def _remove_unfinished_builds(directory: Path) -> None:
    for leftover in directory.parent.glob(f".{directory.name}.*.tmp"):
        log.info("Removing %s, left by a cache fill that was stopped", leftover)
        shutil.rmtree(leftover, ignore_errors=True)


def _problem(directory: Path, manifest: Mapping[str, Any]) -> str | None:
    """None if ``directory`` holds a complete cache built from ``manifest``; what is wrong with it otherwise.

    A cache built from a different manifest raises (it is never rebuilt over, nor mixed).
    """
    if not directory.exists():
        return "missing"
    path = directory / MANIFEST
    if not path.is_file():
        if any(directory.iterdir()):
            raise DistillError(
                f"{directory} holds files but no {MANIFEST}: it is not a top-k teacher cache; "
                "give teacher.cache_dir=ANOTHER_DIR"
            )
        return "missing"
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return f"{MANIFEST} unreadable: {error}"
    check_manifest(found, manifest, directory)
    files = found.get("files") or {}
    if sorted(files) != sorted(FILES):
        return f"{MANIFEST} lists the files {sorted(files)}, not {sorted(FILES)}"
    for name, size in files.items():
        file = directory / name
        if not file.is_file() or file.stat().st_size != size:
            return f"{name} is missing or has the wrong size"
    return None
