"""A small byte-level BPE tokenizer trained on the training texts with ``tokenizers`` and cached.

Byte-level (GPT-2's scheme): every string can be encoded, nothing is unknown.
Training a few thousand merges on the embedded corpus takes about a second;
the result is saved with ``save_pretrained`` under ``cache_dir`` keyed by a
hash of the texts and the vocabulary size, so later runs load it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock

#: the one special token: end of text, also used as the padding token
END_OF_TEXT = "<|endoftext|>"


def bpe_tokenizer(texts: Sequence[str], vocab_size: int, cache_dir: str | Path) -> Any:
    """A ``PreTrainedTokenizerFast`` trained on ``texts`` (loaded from ``cache_dir`` when trained before)."""
    from transformers import PreTrainedTokenizerFast

    digest = hashlib.sha256()
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    folder = Path(cache_dir).expanduser() / "tokenizers" / f"bpe-{vocab_size}-{digest.hexdigest()[:16]}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not (folder / "tokenizer.json").is_file():
            _train(texts, vocab_size).save_pretrained(str(folder))
    return PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)


def _train(texts: Sequence[str], vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[END_OF_TEXT], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=END_OF_TEXT, bos_token=END_OF_TEXT, pad_token=END_OF_TEXT,
        unk_token=END_OF_TEXT,
    )
