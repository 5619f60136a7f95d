"""The raw records of language-model text: files read into documents or JSON records, whole records held out
for validation and test, and what the records hold (text, prompt/completion pairs or chats)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from distill.errors import DistillError


def read_records(path: str) -> list[Any]:
    file = Path(str(path)).expanduser()
    if file.is_dir():
        texts = [p.read_text(encoding="utf-8") for p in sorted(file.glob("*.txt"))]
        if not texts:
            raise DistillError(f"{file} holds no .txt files")
        return texts
    if file.suffix == ".jsonl":
        records = []
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise DistillError(f"{file} line {number} is not JSON: {error.msg}") from None
        return records
    return [file.read_text(encoding="utf-8")]


def hold_out(records: list[Any], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[Any]]:
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(order) * val_fraction)) if val_fraction else 0
    n_test = max(1, round(len(order) * test_fraction)) if test_fraction else 0
    if len(order) <= n_val + n_test:
        raise DistillError(
            f"{len(records)} document(s) cannot be split into train/val/test; give val_file and test_file, "
            "or more documents (a directory of .txt files or a .jsonl file)"
        )
    groups = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
    return {split: [records[i] for i in sorted(group)] for split, group in groups.items()}


def records_kind(records: list[Any]) -> str:
    first = records[0] if records else ""
    if isinstance(first, str) or (isinstance(first, dict) and "text" in first):
        return "text"
    if isinstance(first, dict) and "messages" in first:
        return "chat"
    if isinstance(first, dict) and "prompt" in first:
        return "prompt_completion"
    keys = sorted(first) if isinstance(first, dict) else type(first).__name__
    raise DistillError(f"cannot tell what the records hold ({keys}); give 'text', 'prompt'+'completion' or 'messages'")


def record_text(record: Any) -> str:
    if isinstance(record, str):
        return record
    if "text" in record:
        return str(record["text"])
    if "messages" in record:
        return "\n".join(str(m.get("content", "")) for m in record["messages"])
    return f"{record.get('prompt', '')}{record.get('completion', '')}"
