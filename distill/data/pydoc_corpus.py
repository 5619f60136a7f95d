"""The embedded default corpus: CPython's ``pydoc_data.topics`` (the language reference, ~465 KB of English).

It ships with every CPython, so the language-model default needs no download.
Each help topic is one document; the split is by topic (no topic's text is in
two splits; topics sharing a text count once), seeded.
"""

from __future__ import annotations

import random

from distill.errors import DistillError


def pydoc_topics() -> dict[str, str]:
    """Topic name → text of every help topic."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip it
        raise DistillError(
            "this Python has no pydoc_data.topics (the embedded default corpus); give your own text files "
            "with data.train_file=... (and val_file, test_file)"
        ) from None
    return dict(topics)


def split_topics(
    topics: dict[str, str], val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
) -> dict[str, list[str]]:
    """``{"train": [...], "val": [...], "test": [...]}``: the documents of each split, whole topics, seeded."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise DistillError(f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be >= 0 and sum to < 1")
    # topics that share one text (e.g. "if" and "else") count once, so no text is in two splits
    first_name = {}
    for name in sorted(topics):
        first_name.setdefault(topics[name], name)
    names = sorted(first_name.values())
    random.Random(seed).shuffle(names)
    n_val = max(1, round(len(names) * val_fraction)) if val_fraction else 0
    n_test = max(1, round(len(names) * test_fraction)) if test_fraction else 0
    chosen = {"val": names[:n_val], "test": names[n_val:n_val + n_test], "train": names[n_val + n_test:]}
    return {split: [topics[name] for name in sorted(group)] for split, group in chosen.items()}
