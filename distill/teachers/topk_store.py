"""The arrays of a top-k teacher cache on disk: one row per loss-carrying token, memory-mapped.

Layout of a cache directory (the files of :mod:`distill.teachers.topk_format`):

- ``offsets.npy`` int64 ``[E + 1]``: example ``i``'s tokens are rows ``offsets[i]:offsets[i + 1]``,
  in the order of its loss-carrying positions;
- ``ids.npy`` uint8 ``[N, ceil(k * bits / 8)]``: the top-k ids, bit-packed;
- ``log_probs.npy`` ``[N, k]``: their log-probabilities (float16, bfloat16 as raw bits, or float32);
- ``tail.npy`` float32 ``[N]``: log of the exact mass outside the top k;
- ``manifest.json``: what the cache was built from (:mod:`distill.teachers.lm_manifest`), written last.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from distill.errors import DistillError
from distill.teachers import topk_format as fmt

FILES = ("offsets.npy", "ids.npy", "log_probs.npy", "tail.npy")


class TopKStore:
    """The memory-mapped arrays of one cache directory (``mode="r"`` to read, ``"r+"`` to fill).

    Args:
        directory: the cache directory.
        k: top-k ids per token.
        vocabulary: the vocabulary size (sets the bits per id).
        log_prob_dtype: ``float16``, ``bfloat16`` or ``float32``.
        mode: the memory maps' mode.
    """

    def __init__(self, directory: Path, k: int, vocabulary: int, log_prob_dtype: str, mode: str = "r") -> None:
        self.directory, self.k, self.log_prob_dtype = Path(directory), int(k), fmt.check_log_prob_dtype(log_prob_dtype)
        self.bits = fmt.id_bits(vocabulary)
        arrays = {name: np.load(self.directory / name, mmap_mode=mode) for name in FILES}
        self.offsets, self.ids, self.log_probs, self.tail = (arrays[name] for name in FILES)
        self._offsets = np.asarray(self.offsets)  # small: read once

    @classmethod
    def create(cls, directory: Path, token_counts: Sequence[int], k: int, vocabulary: int,
               log_prob_dtype: str = "float16") -> TopKStore:
        """Allocate the arrays in ``directory`` for examples with ``token_counts`` loss-carrying tokens each."""
        counts = np.asarray(token_counts, dtype=np.int64)
        if counts.ndim != 1 or (counts < 0).any():
            raise DistillError("token_counts must be one whole number >= 0 per example")
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        total, row_bytes = int(offsets[-1]), fmt.packed_id_bytes(int(k), fmt.id_bits(vocabulary))
        np.save(directory / "offsets.npy", offsets)
        shapes = {"ids.npy": ((total, row_bytes), np.uint8),
                  "log_probs.npy": ((total, int(k)), fmt.LOG_PROB_DTYPES[fmt.check_log_prob_dtype(log_prob_dtype)]),
                  "tail.npy": ((total,), np.float32)}
        for name, (shape, dtype) in shapes.items():
            np.lib.format.open_memmap(directory / name, mode="w+", dtype=dtype, shape=shape).flush()
        return cls(directory, k, vocabulary, log_prob_dtype, mode="r+")

    @property
    def num_examples(self) -> int:
        return len(self._offsets) - 1

    @property
    def num_tokens(self) -> int:
        return int(self._offsets[-1])

    def token_count(self, example: int) -> int:
        return int(self._offsets[example + 1] - self._offsets[example])

    def write(self, example: int, ids: Tensor, log_probs: Tensor, tail: Tensor) -> None:
        """Store example ``example``'s ``[n, k]`` ids and log-probabilities and ``[n]`` tail log-masses."""
        start, stop = int(self._offsets[example]), int(self._offsets[example + 1])
        if ids.shape != (stop - start, self.k):
            raise DistillError(
                f"example {example} has {stop - start} loss-carrying tokens in the cache but {tuple(ids.shape)} "
                "top-k rows were given: the data changed since the cache was laid out"
            )
        self.ids[start:stop] = fmt.pack_ids(ids.detach().cpu().numpy(), self.bits)
        self.log_probs[start:stop] = fmt.encode_log_probs(log_probs, self.log_prob_dtype)
        self.tail[start:stop] = tail.detach().float().cpu().numpy()

    def read(self, examples: np.ndarray) -> tuple[Tensor, Tensor, Tensor, np.ndarray]:
        """The rows of ``examples`` one after another: ids ``[N, k]`` int64, log-probs and tail float32, and the counts."""
        examples = np.asarray(examples, dtype=np.int64)
        if examples.size and (examples.min() < 0 or examples.max() >= self.num_examples):
            bad = int(examples.max() if examples.max() >= self.num_examples else examples.min())
            raise DistillError(
                f"example index {bad} is outside the top-k teacher cache of {self.num_examples} examples "
                f"({self.directory}): the training data changed; give teacher.cache_dir=NEW_DIR or teacher.cache=false"
            )
        starts, stops = self._offsets[examples], self._offsets[examples + 1]
        counts = stops - starts
        rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)]) if examples.size else np.zeros(0, np.int64)
        ids = torch.from_numpy(fmt.unpack_ids(self.ids[rows], self.k, self.bits))
        return ids, fmt.decode_log_probs(self.log_probs[rows], self.log_prob_dtype), torch.from_numpy(
            np.asarray(self.tail[rows], dtype=np.float32)), counts

    def flush(self) -> None:
        for array in (self.ids, self.log_probs, self.tail):
            if isinstance(array, np.memmap):
                array.flush()

    def file_bytes(self) -> int:
        """The size of the cache's array files on disk, in bytes."""
        return sum((self.directory / name).stat().st_size for name in FILES)
