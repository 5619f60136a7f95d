"""How a top-k teacher cache keeps each token compactly: bit-packed ids, 16-bit log-probabilities, an fp32 tail.

Per loss-carrying token the cache holds the teacher's ``k`` most likely token
ids, their log-probabilities (normalised with the full log-normaliser, at the
loss temperature) and the log of the exact mass of all other tokens. The ids
are packed with ``ceil(log2(V))`` bits each (18 bits for a 152 k vocabulary,
16 for 49 k), the log-probabilities are ``float16`` (or ``bfloat16``/``float32``)
and the tail is one ``float32``: at ``k = 32`` and ``V = 152,064`` that is
72 + 64 + 4 = 140 bytes per token, against ~297 KB for the dense bf16 logits.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from distill.errors import DistillError

#: the dtypes the log-probabilities can be stored in, and the numpy dtype of their file
LOG_PROB_DTYPES = {"float16": np.float16, "bfloat16": np.uint16, "float32": np.float32}


def id_bits(vocabulary: int) -> int:
    """Bits per token id for a vocabulary of ``vocabulary`` tokens (ids ``0 .. vocabulary-1``)."""
    if int(vocabulary) < 1:
        raise DistillError(f"the vocabulary size must be >= 1, got {vocabulary}")
    return max(1, math.ceil(math.log2(int(vocabulary))))


def packed_id_bytes(k: int, bits: int) -> int:
    """Bytes of one token's ``k`` packed ids."""
    return math.ceil(k * bits / 8)


def bytes_per_token(k: int, vocabulary: int, log_prob_dtype: str = "float16") -> int:
    """The payload of one cached token: packed ids, ``k`` log-probabilities and the fp32 tail."""
    return packed_id_bytes(k, id_bits(vocabulary)) + k * np.dtype(LOG_PROB_DTYPES[log_prob_dtype]).itemsize + 4


def pack_ids(ids: np.ndarray, bits: int) -> np.ndarray:
    """``[N, k]`` token ids (each ``< 2**bits``) as ``[N, ceil(k * bits / 8)]`` bytes, ``bits`` per id, little-endian."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= 1 << bits):
        raise DistillError(f"token ids must be in 0..{(1 << bits) - 1} to be packed in {bits} bits, got {ids.min()}..{ids.max()}")
    rows, k = ids.shape
    shifts = np.arange(bits, dtype=np.uint32)
    bit_planes = ((ids.astype(np.uint32)[..., None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(bit_planes.reshape(rows, k * bits), axis=-1, bitorder="little")


def unpack_ids(packed: np.ndarray, k: int, bits: int) -> np.ndarray:
    """The inverse of :func:`pack_ids`: ``[N, k]`` int64 ids."""
    packed = np.asarray(packed)
    bit_planes = np.unpackbits(packed, axis=-1, count=k * bits, bitorder="little").reshape(len(packed), k, bits)
    return (bit_planes.astype(np.int64) << np.arange(bits, dtype=np.int64)).sum(-1)


def encode_log_probs(log_probs: Tensor, dtype: str) -> np.ndarray:
    """Float log-probabilities as the array stored for ``dtype`` (bfloat16 kept as its 16 raw bits)."""
    check_log_prob_dtype(dtype)
    values = log_probs.detach().float().cpu()
    if dtype == "bfloat16":
        return values.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    return values.numpy().astype(LOG_PROB_DTYPES[dtype])


def decode_log_probs(stored: np.ndarray, dtype: str) -> Tensor:
    """The stored log-probabilities as a float32 tensor."""
    if dtype == "bfloat16":
        return torch.from_numpy(np.ascontiguousarray(stored).view(np.int16)).view(torch.bfloat16).float()
    return torch.from_numpy(np.asarray(stored, dtype=np.float32))


def round_trip(log_probs: Tensor, dtype: str) -> Tensor:
    """``log_probs`` as they read back from the cache (rounded to ``dtype``), on their device, float32."""
    check_log_prob_dtype(dtype)
    return log_probs.float() if dtype == "float32" else log_probs.to(getattr(torch, dtype)).float()


def check_log_prob_dtype(dtype: str) -> str:
    if dtype not in LOG_PROB_DTYPES:
        raise DistillError(f"the cache stores log-probabilities as one of {', '.join(LOG_PROB_DTYPES)}, got {dtype!r}")
    return dtype
