"""The top-k cache's compact format: bit-packed ids, 16-bit log-probabilities, bytes per token measured on disk."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distill.errors import DistillError
from distill.teachers import topk_format as fmt
from distill.teachers.topk_store import TopKStore


@pytest.mark.parametrize("vocabulary, bits", [(2, 1), (300, 9), (49_152, 16), (65_536, 16), (65_537, 17), (152_064, 18)])
def test_ids_pack_in_the_fewest_bits_and_unpack_exactly(vocabulary, bits):
    assert fmt.id_bits(vocabulary) == bits
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocabulary, size=(7, 32))
    ids[0, :2] = [0, vocabulary - 1]  # the extremes
    packed = fmt.pack_ids(ids, bits)
    assert packed.dtype == np.uint8 and packed.shape == (7, -(-32 * bits // 8))
    np.testing.assert_array_equal(fmt.unpack_ids(packed, 32, bits), ids)


def test_an_id_that_does_not_fit_its_bits_is_refused():
    with pytest.raises(DistillError, match="0..511"):
        fmt.pack_ids(np.array([[512]]), 9)


def test_bytes_per_token_at_k32_for_a_152k_vocabulary_meets_the_target():
    # 32 ids x 18 bits = 72 bytes, 32 float16 = 64, one float32 tail = 4 (dense bf16 logits: 304,128 bytes)
    assert fmt.bytes_per_token(32, 152_064, "float16") == 140
    assert fmt.bytes_per_token(32, 49_152, "float16") == 64 + 64 + 4


def test_bytes_per_token_measured_from_the_files(tmp_path):
    counts = [200] * 20  # 4,000 tokens: the .npy headers and offsets add well under a byte per token
    store = TopKStore.create(tmp_path, counts, k=32, vocabulary=152_064, log_prob_dtype="float16")
    measured = store.file_bytes() / store.num_tokens
    assert 140 <= measured <= 141 and measured <= 150


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_stored_log_probs_read_back_as_torch_rounds_them(dtype):
    x = -torch.rand(50, 8, dtype=torch.float64).float() * 40
    decoded = fmt.decode_log_probs(fmt.encode_log_probs(x, dtype), dtype)
    torch.testing.assert_close(decoded, fmt.round_trip(x, dtype), rtol=0, atol=0)
    assert decoded.dtype == torch.float32


def test_float16_storage_error_is_within_half_an_ulp():
    # round to nearest: |x16 - x| <= 2**-11 |x| for normal numbers, plus 2**-25 below the normal range
    x = torch.cat([-torch.rand(10_000) * 60, -torch.rand(1000) * 1e-4, torch.tensor([0.0])])
    error = (fmt.round_trip(x, "float16") - x).abs()
    assert bool((error <= 2.0**-11 * x.abs() + 2.0**-25).all())
    assert error.max() > 0  # it is a real rounding, not a no-op


def test_store_rows_round_trip_by_example_in_any_order(tmp_path):
    counts = [3, 0, 5, 2]
    store = TopKStore.create(tmp_path, counts, k=4, vocabulary=1000, log_prob_dtype="float32")
    torch.manual_seed(0)
    written = {}
    for example, n in enumerate(counts):
        rows = (torch.randint(0, 1000, (n, 4)), -torch.rand(n, 4) * 5, -torch.rand(n))
        store.write(example, *rows)
        written[example] = rows
    ids, log_probs, tail, got_counts = store.read(np.array([2, 0, 2, 1, 3]))
    np.testing.assert_array_equal(got_counts, [5, 3, 5, 0, 2])
    order = [2, 0, 2, 1, 3]
    torch.testing.assert_close(ids, torch.cat([written[e][0] for e in order]))
    torch.testing.assert_close(log_probs, torch.cat([written[e][1] for e in order]))
    torch.testing.assert_close(tail, torch.cat([written[e][2] for e in order]))
    with pytest.raises(DistillError, match="2 loss-carrying tokens"):
        store.write(3, *written[0])
    with pytest.raises(DistillError, match="outside the top-k teacher cache of 4 examples"):
        store.read(np.array([4]))
