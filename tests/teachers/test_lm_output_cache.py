"""The top-k teacher cache of a language model: write-through, reuse, the loss it feeds, and what it refuses.

Tiny GPT-2s built from configs (vocabulary 40, blocks of 12 tokens, ~10 k parameters), ten examples with
prompt masks of 0-2 tokens, batches of 4: three batches an epoch.
"""

from __future__ import annotations

import copy
import json

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from distill import DistillationModule
from distill.data.lm_text import TokenExamples
from distill.errors import DistillError
from distill.lm.tokens import IGNORE_INDEX
from distill.losses import TokenCrossEntropy, TokenKL
from distill.losses.functional.token_losses import token_kl_loss
from distill.teachers.lm_manifest import examples_sha256, lm_cache_manifest
from distill.teachers.lm_output_cache import TopKTeacherCache

VOCAB, BLOCK, BATCH = 40, 12, 4


class Tokenizer:
    """Stands in for a tokenizer: what the manifest hashes (vocabulary, special tokens, chat template)."""

    chat_template = None
    special_tokens_map = {"eos_token": "0"}

    def get_vocab(self):
        return {str(i): i for i in range(VOCAB)}


def examples(n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    made = []
    for _ in range(n):
        length = int(torch.randint(5, BLOCK + 1, (1,), generator=g))
        ids = torch.randint(0, VOCAB, (length,), generator=g).tolist()
        prompt = int(torch.randint(0, 3, (1,), generator=g))
        made.append((ids, [IGNORE_INDEX] * prompt + ids[prompt:]))
    return made


def token_counts(made):
    return [sum(1 for label in labels[1:] if label != IGNORE_INDEX) for _, labels in made]


def gpt2(width, seed):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=VOCAB, n_layer=1, n_embd=width, n_head=2, n_positions=BLOCK, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


@pytest.fixture
def teacher():
    model = gpt2(16, seed=0)
    model.calls = []  # one entry per forward pass
    model.register_forward_pre_hook(lambda module, args: module.calls.append(1))
    return model


def manifest(teacher, made, temperature=2.0, top_k=5, dtype="float16", **changes):
    fields = lm_cache_manifest(teacher, Tokenizer(), examples_sha256(made, BLOCK, 0), token_counts(made),
                               vocabulary=VOCAB, temperature=temperature, top_k=top_k, log_prob_dtype=dtype)
    return {**fields, **changes}


def open_cache(directory, teacher, made, **options):
    return TopKTeacherCache.open(directory, manifest(teacher, made, **options), token_counts(made), teacher)


def loader(made, shuffle=True):
    return DataLoader(TokenExamples(made, BLOCK, 0, labels=True, with_index=True), batch_size=BATCH, shuffle=shuffle)


def fit(module, made, epochs, **options):
    L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, limit_val_batches=0, **options).fit(module, loader(made))


def kd(temperature=2.0, top_k=5):
    return {"kd": TokenKL(temperature=temperature, top_k=top_k), "ce": TokenCrossEntropy(0.1)}


def test_the_first_epoch_fills_the_cache_and_later_epochs_and_runs_never_call_the_teacher(tmp_path, teacher):
    made = examples()
    with open_cache(tmp_path / "cache", teacher, made) as cache:
        assert not cache.complete and not (tmp_path / "cache").exists()  # filled in a hidden directory first
        fit(DistillationModule(gpt2(8, 1), teacher, kd(), teacher_outputs=cache), made, epochs=2)
        assert cache.complete and cache.origin == "filled"
        assert len(teacher.calls) == cache.teacher_batches == 3  # epoch 1's three batches, none in epoch 2
    written = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert written["top_k"] == 5 and written["temperature"] == 2.0 and written["num_tokens"] == sum(token_counts(made))
    assert list(tmp_path.glob(".cache.*.tmp")) == []

    # a later run: complete from the start, the teacher is not called in epoch 1 either
    with open_cache(tmp_path / "cache", teacher, made) as again:
        assert again.complete and again.origin == "reused"
        fit(DistillationModule(gpt2(8, 1), teacher, kd(), teacher_outputs=again), made, epochs=1)
    assert len(teacher.calls) == 3 and again.teacher_batches == 0


def test_cached_equals_online_top_k_loss_and_gradients_through_the_module(tmp_path, teacher):
    """float32 storage: the cached path is the online top-k path, to float tolerance, while filling and when read."""
    made = examples()
    batch = next(iter(loader(made, shuffle=False)))
    student = gpt2(8, seed=1)
    online = DistillationModule(copy.deepcopy(student), teacher, kd())

    def loss_and_grads(module):
        module.student.zero_grad()
        loss = module.training_step(batch, 0)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in module.student.parameters()]

    expected_loss, expected_grads = loss_and_grads(online)
    with open_cache(tmp_path / "cache", teacher, made, dtype="float32") as cache:
        cached = DistillationModule(copy.deepcopy(student), teacher, kd(), teacher_outputs=cache)
        for _ in ("filling", "read back"):
            loss, grads = loss_and_grads(cached)
            torch.testing.assert_close(loss, expected_loss, rtol=1e-6, atol=1e-7)
            for got, want in zip(grads, expected_grads):
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
        assert cache.teacher_batches == 1  # the second pass read the cache


def _cached_teacher(tmp_path, teacher, made, k, dtype="float32"):
    with open_cache(tmp_path / f"k{k}-{dtype}", teacher, made, top_k=k, dtype=dtype) as cache:
        cache.fill(loader(made, shuffle=False))
        batch = next(iter(loader(made, shuffle=False)))
        parts = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        from distill.batch import split_batch

        cached, _ = cache.outputs(split_batch(batch), torch.device("cpu"))
    with torch.no_grad():
        dense = teacher(**parts).logits
    return cached, dense, batch["labels"], batch["input_ids"]


def test_cached_forward_kl_is_a_lower_bound_of_the_full_kl_and_equal_at_k_equal_v(tmp_path, teacher):
    made = examples()
    student_logits = gpt2(8, seed=1)(input_ids=next(iter(loader(made, shuffle=False)))["input_ids"]).logits.detach()
    for k in (1, 5, 20, VOCAB):
        cached, dense, labels, _ = _cached_teacher(tmp_path, teacher, made, k)
        sparse = token_kl_loss(student_logits, cached, labels, temperature=2.0, reduction="none")
        full = token_kl_loss(student_logits, dense, labels, temperature=2.0, reduction="none")
        assert bool((sparse <= full + 1e-6).all()), k  # coarsening never increases KL, per token
        if k == VOCAB:
            torch.testing.assert_close(sparse, full, rtol=1e-5, atol=1e-6)
        else:
            assert sparse.sum() < full.sum()


def test_float16_storage_changes_the_kl_by_at_most_its_rounding_bound(tmp_path, teacher):
    """Each stored log p moves by e <= 2**-11 |log p| (+2**-25); per bucket p log(p/q) then moves by at most
    p ((exp(e) - 1) |log(p/q)| + exp(e) e), and the tail (float32) not at all."""
    made = examples()
    student_logits = gpt2(8, seed=1)(input_ids=next(iter(loader(made, shuffle=False)))["input_ids"]).logits.detach()
    exact, _, labels, _ = _cached_teacher(tmp_path, teacher, made, 5, "float32")
    rounded, _, _, _ = _cached_teacher(tmp_path, teacher, made, 5, "float16")
    assert torch.equal(exact.ids, rounded.ids) and torch.equal(exact.tail_log_mass, rounded.tail_log_mass)
    error = (rounded.log_probs - exact.log_probs).abs()
    assert bool((error <= 2.0**-11 * exact.log_probs.abs() + 2.0**-25).all()) and error.max() > 0
    # the bound on the summed KL (before T^2), over the loss-carrying positions
    mask = F.pad(labels[:, 1:] != IGNORE_INDEX, (0, 1))
    log_p, e = exact.log_probs[mask], 2.0**-11 * exact.log_probs[mask].abs() + 2.0**-25
    log_q = F.log_softmax(student_logits / 2.0, -1)[mask].gather(-1, exact.ids[mask])
    bound = (log_p.exp() * ((e.exp() - 1) * (log_p - log_q).abs() + e.exp() * e)).sum() * 2.0**2
    values = [token_kl_loss(student_logits, t, labels, temperature=2.0, reduction="sum") for t in (exact, rounded)]
    assert 0 < (values[1] - values[0]).abs() <= bound


def test_an_epoch_that_does_not_cover_every_example_keeps_no_cache(tmp_path, teacher):
    made = examples()
    with open_cache(tmp_path / "cache", teacher, made) as cache:
        fit(DistillationModule(gpt2(8, 1), teacher, kd(), teacher_outputs=cache), made, epochs=1, limit_train_batches=1)
        assert not cache.complete
    assert not (tmp_path / "cache").exists() and list(tmp_path.glob(".cache.*.tmp")) == []
    assert cache.bytes_per_token() is None  # its files are gone: nothing to measure (the run's summary reads this)
    with open_cache(tmp_path / "cache", teacher, made) as again:
        assert not again.complete and again.origin == "filled"


def test_a_stopped_fill_is_never_read_as_complete(tmp_path, teacher):
    made = examples()
    stopped = tmp_path / ".cache.abc.tmp"  # what a killed run leaves: arrays, no manifest, a hidden name
    stopped.mkdir()
    (stopped / "ids.npy").write_bytes(b"half")
    (tmp_path / "cache").mkdir()  # and an empty directory in its place
    with open_cache(tmp_path / "cache", teacher, made) as cache:
        assert not cache.complete and not stopped.exists()


def test_a_different_manifest_on_reuse_is_a_one_line_error_naming_the_field(tmp_path, teacher):
    made = examples()
    with open_cache(tmp_path / "cache", teacher, made) as cache:
        cache.fill(loader(made))
    changed = {"temperature": {"temperature": 1.0}, "top_k": {"top_k": 8}, "tokenizer_sha256": {"tokenizer_sha256": "f" * 64},
               "chat_template_sha256": {"chat_template_sha256": "a" * 64}, "teacher_dtype": {"teacher_dtype": "bfloat16"}}
    for field, change in changed.items():
        with pytest.raises(DistillError, match=rf"different {field} .*teacher.cache_dir=NEW_DIR.*teacher.cache=false") as error:
            TopKTeacherCache.open(tmp_path / "cache", manifest(teacher, made, **change), token_counts(made), teacher)
        assert "\n" not in str(error.value)
    other_teacher = gpt2(16, seed=5)
    with pytest.raises(DistillError, match="different teacher_sha256"):
        open_cache(tmp_path / "cache", other_teacher, made)
    ids, labels = made[0]
    one_token_changed = [(ids[:-1] + [(ids[-1] + 1) % VOCAB], labels[:-1] + [(ids[-1] + 1) % VOCAB]), *made[1:]]
    with pytest.raises(DistillError, match="different data_sha256"):  # the same token counts, another token
        open_cache(tmp_path / "cache", teacher, one_token_changed)
    assert json.loads((tmp_path / "cache" / "manifest.json").read_text())["temperature"] == 2.0  # untouched


def test_a_directory_that_is_not_a_cache_is_never_overwritten(tmp_path, teacher):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(DistillError, match="not a top-k teacher cache"):
        open_cache(tmp_path / "mine", teacher, examples())
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_a_damaged_cache_is_filled_again(tmp_path, teacher, caplog):
    made = examples()
    with open_cache(tmp_path / "cache", teacher, made) as cache:
        cache.fill(loader(made))
    with open(tmp_path / "cache" / "log_probs.npy", "ab") as handle:
        handle.write(b"x")
    with open_cache(tmp_path / "cache", teacher, made) as again:
        assert not again.complete
        again.fill(loader(made))
        assert again.complete
    assert "log_probs.npy is missing or has the wrong size" in caplog.text


def test_a_second_run_waits_for_the_one_filling_the_cache(tmp_path, teacher, monkeypatch):
    made = examples()
    monkeypatch.setenv("DISTILL_LOCK_TIMEOUT", "0")
    with open_cache(tmp_path / "cache", teacher, made) as filling:
        with pytest.raises(DistillError, match="gave up after 0 s waiting for the top-k teacher cache"):
            open_cache(tmp_path / "cache", teacher, made)
        filling.fill(loader(made))
        with open_cache(tmp_path / "cache", teacher, made) as reader:  # released once complete
            assert reader.complete


def test_the_cache_refuses_a_loss_at_another_temperature_or_k(tmp_path, teacher):
    made = examples()
    with open_cache(tmp_path / "cache", teacher, made) as cache:
        batch = next(iter(loader(made)))
        for terms, message in (({"kd": TokenKL(temperature=1.0, top_k=5)}, "taken at temperature 2.0"),
                               ({"kd": TokenKL(temperature=2.0, top_k=3)}, "term has top_k=3")):
            module = DistillationModule(gpt2(8, 1), teacher, terms, teacher_outputs=cache)
            with pytest.raises(DistillError, match=message):
                module.training_step(batch, 0)


def test_fill_ahead_covers_every_example_once(tmp_path, teacher):
    made = examples()
    with open_cache(tmp_path / "cache", teacher, made) as cache:
        partial = [b for i, b in enumerate(loader(made, shuffle=False)) if i < 2]
        with pytest.raises(DistillError, match="covered 8 of 10 training examples"):
            cache.fill(partial)
        cache.fill(loader(made, shuffle=False))
        assert cache.complete and cache.teacher_batches == 3
    ids, log_probs, tail, counts = TopKTeacherCache.open(
        tmp_path / "cache", manifest(teacher, made), token_counts(made)).store.read(np.arange(10))
    assert counts.tolist() == token_counts(made) and len(ids) == sum(token_counts(made))
    # the stored rows are the teacher's top 5 at T = 2, normalised over the whole vocabulary
    first = made[0]
    with torch.no_grad():
        logits = teacher(input_ids=torch.tensor([first[0]])).logits[0, :-1].float()
    keep = torch.tensor(first[1][1:]) != IGNORE_INDEX
    log_p = F.log_softmax(logits[keep] / 2.0, -1)
    n = counts[0]
    top = log_p.topk(5, -1)
    torch.testing.assert_close(ids[:n], top.indices)
    torch.testing.assert_close(log_probs[:n], top.values, rtol=2.0**-10, atol=1e-6)
    tail_exact = torch.log1p(-top.values.exp().sum(-1).clamp(max=1 - 1e-7))
    torch.testing.assert_close(tail[:n], tail_exact, rtol=1e-4, atol=1e-5)
