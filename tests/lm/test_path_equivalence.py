"""Path equivalence: the same batch gives the same loss and the same student gradients through every path.

One batch (four prompt-masked examples of 12 tokens, 24 loss tokens), tiny GPT-2 teacher and student built
from configs (widths 16 and 8, vocabulary 40), three token terms (forward KL at T = 2, JSD(β = 0.3) at
T = 1.5, reverse KL at T = 1). Each case computes a reference and the path under test with
``DistillationModule.training_step`` followed by ``backward``:

- ``chunked-<n>``: every term with ``chunk_size=n`` vs all tokens at once;
- ``cached-top-k-filling`` / ``cached-top-k-read``: the online top-k teacher vs :class:`TopKTeacherCache`
  (float32 storage; the step that fills the cache and a later step that reads it);
- ``on-policy-lambda-0``: :class:`OnPolicy` with λ = 0 vs the plain teacher-forced step;
- ``ddp-2-processes`` (slow): two gloo processes under Lightning's ``strategy="ddp"``, holding 4 and
  20 loss tokens, vs one process on the whole batch (the loss is the ranks' mean, the gradient DDP's
  average); the naive per-rank-mean gradient is computed too and must differ.

Packed vs unpacked is not defined in distill: :mod:`distill.data.lm_examples` never packs several documents
into one row (a block lies inside one document and is padded), so there is no packed path to compare.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import default_collate

from distill import DistillationModule
from distill.lm.on_policy import OnPolicy
from tests.lm.ddp_token_normalizer_run import dataset, examples, models, terms
from tests.teachers.test_lm_output_cache import loader, open_cache

RUN = Path(__file__).with_name("ddp_token_normalizer_run.py")
#: float32 sums of ~24 tokens in a different order (chunks, processes): a few ulps of the loss and gradients
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}
TOP_K, CACHE_TEMPERATURE = 5, 2.0


def whole_batch():
    return default_collate([dataset()[i] for i in range(len(dataset()))])


def loss_and_grads(module, batch):
    module.student.zero_grad()
    loss = module.training_step(batch, 0)
    loss.backward()
    return loss.detach(), {name: p.grad.detach().clone() for name, p in module.student.named_parameters()}


def module(loss_terms, **options):
    teacher, student = models()
    return DistillationModule(student, teacher, loss_terms, **options)


def chunked(size):
    def paths(tmp_path):
        batch = whole_batch()
        yield loss_and_grads(module(terms()), batch), loss_and_grads(module(terms(chunk_size=size)), batch)
    return paths


def cached_top_k(step):
    """The online top-k teacher vs the cache while it fills (``step`` 0) and once it is read (``step`` 1)."""
    def paths(tmp_path):
        made = examples()
        batch = next(iter(loader(made, shuffle=False)))
        same_t = (CACHE_TEMPERATURE,) * 3  # the cache holds one temperature's log-probabilities
        expected = loss_and_grads(module(terms(same_t, top_k=TOP_K)), batch)
        teacher, _ = models()
        with open_cache(tmp_path / "cache", teacher, made, temperature=CACHE_TEMPERATURE, top_k=TOP_K,
                        dtype="float32") as cache:
            cached = module(terms(same_t, top_k=TOP_K), teacher_outputs=cache)
            got = [loss_and_grads(cached, batch) for _ in range(step + 1)][-1]
            assert cache.teacher_batches == 1  # the teacher ran once: the second step read the cache
        yield expected, got
    return paths


def on_policy_lambda_zero(tmp_path):
    batch = whole_batch()
    yield loss_and_grads(module(terms()), batch), loss_and_grads(
        module(terms(), on_policy=OnPolicy(lmbda=0.0, eos_token_id=0, pad_token_id=0)), batch)


def ddp_two_processes(tmp_path):
    result = subprocess.run([sys.executable, str(RUN), str(tmp_path)], capture_output=True, text=True, timeout=600,
                            cwd=RUN.parent, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    batch = whole_batch()
    rank_batches = [default_collate([dataset()[i] for i in seen["indices"]]) for seen in ranks]
    tokens = [int((b["labels"][:, 1:] != -100).sum()) for b in rank_batches]
    assert [seen["world_size"] for seen in ranks] == [2, 2] and sorted(ranks[0]["indices"] + ranks[1]["indices"]) == [0, 1, 2, 3]
    assert [seen["local_tokens"] for seen in ranks] == tokens == [4, 20]  # different numbers of loss tokens
    assert [seen["normalizer"] for seen in ranks] == [sum(tokens) / 2] * 2
    for name, grad in ranks[1]["grads"].items():  # DDP's all-reduce: both ranks step with the same gradient
        torch.testing.assert_close(grad, ranks[0]["grads"][name], rtol=0, atol=0)

    expected = loss_and_grads(module(terms()), batch)
    got = torch.tensor(sum(seen["loss"] for seen in ranks) / 2), ranks[0]["grads"]
    # without the global normalizer each rank divides by its own tokens: DDP would average the ranks' means
    naive = [loss_and_grads(module(terms()), b) for b in rank_batches]
    naive_grads = {name: (naive[0][1][name] + naive[1][1][name]) / 2 for name in expected[1]}
    differences = [float((naive_grads[n] - expected[1][n]).abs().max()) for n in expected[1]]
    assert max(differences) > 1e3 * TOLERANCE["atol"], "the naive per-rank mean would not be told apart here"
    yield expected, got


PATHS = [
    pytest.param(chunked(1), id="chunked-1"),
    pytest.param(chunked(5), id="chunked-5"),
    pytest.param(cached_top_k(0), id="cached-top-k-filling"),
    pytest.param(cached_top_k(1), id="cached-top-k-read"),
    pytest.param(on_policy_lambda_zero, id="on-policy-lambda-0"),
    pytest.param(ddp_two_processes, id="ddp-2-processes", marks=pytest.mark.slow),  # two processes, ~a minute
]


@pytest.mark.parametrize("paths", PATHS)
def test_the_same_batch_gives_the_same_loss_and_student_gradients_through_every_path(paths, tmp_path):
    for (expected_loss, expected_grads), (loss, grads) in paths(tmp_path):
        torch.testing.assert_close(loss, expected_loss, **TOLERANCE)
        assert grads.keys() == expected_grads.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(grad, expected_grads[name], **TOLERANCE, msg=lambda m, n=name: f"{n}: {m}")
        assert any(bool(g.abs().max() > 0) for g in grads.values())  # a path that trained nothing would pass vacuously
