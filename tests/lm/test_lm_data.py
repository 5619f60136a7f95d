"""Language-model data: blocks inside documents, prompt and chat masks, the embedded corpus split by topic."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoTokenizer

from distill.data import LanguageModelDataModule
from distill.data.lm_examples import IGNORE_INDEX, chat, prompt_completion, text_blocks
from distill.data.pydoc_corpus import pydoc_topics, split_topics
from distill.errors import DistillError
from distill.lm.mask_audit import mask_audit


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))


def test_text_blocks_never_span_documents(tokenizer):
    docs = ["for loop " * 7, "while statement"]
    blocks = text_blocks(docs, tokenizer, block_size=5)
    eos = tokenizer.eos_token_id
    expected = []
    for doc in docs:
        ids = tokenizer(doc)["input_ids"] + [eos]
        expected += [ids[i:i + 5] for i in range(0, len(ids), 5) if len(ids[i:i + 5]) >= 2]
    assert [ids for ids, _ in blocks] == expected
    assert all(ids == labels for ids, labels in blocks)
    # an EOS (a document's end) is only ever a block's last token: no block holds two documents
    assert all(eos not in ids[:-1] for ids, _ in blocks)


def test_prompt_tokens_carry_no_loss(tokenizer):
    [(ids, labels)] = prompt_completion([{"prompt": "The for", "completion": " loop"}], tokenizer, 32)
    prompt = tokenizer("The for")["input_ids"]
    completion = tokenizer(" loop")["input_ids"] + [tokenizer.eos_token_id]
    assert ids == prompt + completion
    assert labels == [IGNORE_INDEX] * len(prompt) + completion
    with pytest.raises(DistillError, match="record 1 needs string fields"):
        prompt_completion([{"prompt": "x"}], tokenizer, 32)


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_chat_loss_on_assistant_turns_only(tokenizer):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    tokenizer.chat_template = CHATML
    messages = [{"role": "user", "content": "for?"}, {"role": "assistant", "content": "a loop"},
                {"role": "user", "content": "while?"}, {"role": "assistant", "content": "also"}]
    [(ids, labels)] = chat([{"messages": messages}], tokenizer, 512)
    kept = tokenizer.decode([t for t, l in zip(ids, labels) if l != IGNORE_INDEX])
    assert kept == "a loop<|im_end|>\nalso<|im_end|>\n"
    dropped = tokenizer.decode([t for t, l in zip(ids, labels) if l == IGNORE_INDEX])
    assert "for?" in dropped and "while?" in dropped and "a loop" not in dropped
    with pytest.raises(DistillError, match="chat template"):
        chat([{"messages": messages}], AutoTokenizer.from_pretrained(tokenizer.name_or_path), 512)


def test_embedded_corpus_is_split_by_topic_and_seeded():
    topics = pydoc_topics()
    splits = split_topics(topics, 0.1, 0.1, seed=0)
    assert sum(map(len, splits.values())) == len(set(topics.values()))  # "if" and "else" share one text
    texts = {split: set(docs) for split, docs in splits.items()}
    assert not (texts["train"] & texts["val"]) and not (texts["train"] & texts["test"]) and not (texts["val"] & texts["test"])
    assert split_topics(topics, 0.1, 0.1, seed=0) == splits
    assert split_topics(topics, 0.1, 0.1, seed=1)["test"] != splits["test"]


def test_batches_from_jsonl_files(tmp_path, tiny_tokenizer_dir):
    rows = [{"prompt": f"The for {i}", "completion": " loop is a block"} for i in range(10)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    data = LanguageModelDataModule(train_file=str(path), tokenizer=str(tiny_tokenizer_dir), block_size=16,
                                   batch_size=4, val_fraction=0.2, test_fraction=0.2, with_index=True)
    assert data.kind == "prompt_completion" and data.num_classes == 300
    batch = next(iter(data.train_dataloader()))
    assert set(batch) == {"input_ids", "attention_mask", "labels", "index"}
    assert batch["input_ids"].shape == (4, 16) and batch["labels"].shape == (4, 16)
    # padding: attention 0, no loss; prompt positions: attention 1, no loss
    assert ((batch["attention_mask"] == 0) <= (batch["labels"] == IGNORE_INDEX)).all()
    assert (batch["labels"][:, 0] == IGNORE_INDEX).all()
    assert len(data.datasets["train"]) == 6 and len(data.datasets["val"]) == 2


def test_embedded_default_with_a_cached_bpe(tmp_path):
    data = LanguageModelDataModule(vocab_size=300, block_size=32, cache_dir=str(tmp_path))
    assert data.num_classes == 300 and data.kind == "text"
    assert len(list((tmp_path / "tokenizers").glob("bpe-300-*/tokenizer.json"))) == 1
    again = LanguageModelDataModule(vocab_size=300, block_size=32, cache_dir=str(tmp_path))
    assert again.tokenizer.get_vocab() == data.tokenizer.get_vocab()
    batch = next(iter(data.val_dataloader()))
    assert batch["input_ids"].shape == (16, 32)


def test_mask_audit_marks_loss_tokens(tokenizer):
    ids = tokenizer("The for loop")["input_ids"]
    labels = [IGNORE_INDEX] * 2 + ids[2:]
    audit = mask_audit(ids, labels, tokenizer)
    first, text = audit.split("\n", 1)
    assert first.startswith(f"{len(ids) - 2} of {len(ids)} tokens carry loss")
    assert text == tokenizer.decode(ids[:2]) + "".join(f"[{tokenizer.decode([t])}]" for t in ids[2:])


def test_bad_files(tmp_path):
    with pytest.raises(DistillError, match="does not exist"):
        LanguageModelDataModule(train_file=str(tmp_path / "missing.txt"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"a": 2}\n{"a": 3}\n')
    with pytest.raises(DistillError, match="cannot tell what the records hold"):
        LanguageModelDataModule(train_file=str(bad), tokenizer=None, cache_dir=str(tmp_path)).kind
