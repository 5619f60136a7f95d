"""The language-model report of a run across tokenizers: each model measured on its own tokens of the test text.

Agreement, KL and JSD to the teacher compare two distributions over one
vocabulary, so they are left out here; each model's perplexity is per token of its
own tokenizer (not comparable across tokenizers: fewer, longer tokens give a
higher perplexity for the same text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from distill.io import atomic_write_text
from distill.models.fingerprint import count_parameters
from distill.report.lm_metrics import token_fidelity
from distill.report.speed import size_on_disk_mb


def cross_tokenizer_report(models: Mapping[str, tuple[str, nn.Module, Any]], run_dir: Path) -> dict[str, Any]:
    """``models``: role -> (name, model, its data module), ``teacher`` and ``student`` and optionally ``baseline``
    (the student trained alone, on the student's tokens); writes ``report_lm.json`` and ``report_lm.md``."""
    rows = []
    for role, (name, model, data) in models.items():
        row = token_fidelity({"teacher": model}, data.test_dataloader())["teacher"]
        row.update(name=name, role=role, parameters=count_parameters(model), size_mb=size_on_disk_mb(model),
                   vocabulary=data.num_classes)
        rows.append(row)
    by_role = {row["role"]: row for row in rows}
    summary = (f"the student's perplexity is {by_role['student']['perplexity']:.1f} per token of its {by_role['student']['vocabulary']}-token "
               f"vocabulary, the teacher's {by_role['teacher']['perplexity']:.1f} per token of its {by_role['teacher']['vocabulary']} "
               "(different tokenizers: not comparable token for token)")
    if "baseline" in by_role:  # the student's own tokenizer: these two compare token for token
        base, student = by_role["baseline"], by_role["student"]
        verdict = "lower" if student["perplexity"] < base["perplexity"] else "not lower"
        summary += (f"; the student trained alone: perplexity {base['perplexity']:.1f} on the same tokens "
                    f"(distilled: {verdict})")
    report = {"rows": rows, "notes": ["teacher and student have different tokenizers: agreement and KL are not measured"],
              "summary": summary}
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "report_lm.json", json.dumps(report, indent=2) + "\n")
    lines = ["# Language-model report (different tokenizers)", "",
             "| model | role | vocabulary | perplexity (own tokens) | token acc. | ECE | params | MB |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['role']} | {r['vocabulary']} | {r['perplexity']:.2f} | {100 * r['accuracy']:.1f} % | "
              f"{100 * r['ece']:.1f} % | {r['parameters'] / 1e6:.2f}M | {r['size_mb']:.1f} |" for r in rows]
    lines += ["", *[f"- {note}" for note in report["notes"]], f"- {summary}", ""]
    atomic_write_text(run_dir / "report_lm.md", "\n".join(lines))
    return report
