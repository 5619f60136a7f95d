"""The language-model fidelity report: each model's row, position buckets, generations, one summary line."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from distill.io import atomic_write_text
from distill.lm.vocabulary import VocabularySlice
from distill.models.fingerprint import count_parameters
from distill.report.lm_metrics import greedy_generations, summary_line, token_fidelity, tokens_per_second
from distill.report.speed import size_on_disk_mb


def language_model_report(models: Mapping[str, tuple[str, nn.Module]], datamodule: Any, run_dir: Path,
                          notes: list[str] | None = None, speed: bool = True, prompts: int = 3,
                          mask_audit: str | None = None) -> dict[str, Any]:
    """Measure ``models`` (role → (name, model); roles ``teacher``, ``student``, optional ``baseline``) on the
    test split and write ``report_lm.json`` and ``report_lm.md`` into ``run_dir``.

    ``mask_audit``: :func:`distill.lm.mask_audit.mask_audit` of a training example, shown in its own section."""
    bare = {role: model for role, (_, model) in models.items()}
    rows = token_fidelity(bare, datamodule.test_dataloader())
    vocab, block = datamodule.num_classes, datamodule.block_size
    for role, (name, model) in models.items():
        rows[role].update(name=name, role=role, parameters=count_parameters(model), size_mb=size_on_disk_mb(model))
        if speed:
            rows[role].update(tokens_per_s_b1=tokens_per_second(model, block, vocab, 1),
                              tokens_per_s_b16=tokens_per_second(model, block, vocab, 16))
    examples = datamodule.datasets["test"].examples
    starts = [ids[: max(2, min(16, len(ids) // 2))] for ids, _ in examples[:: max(1, len(examples) // prompts)][:prompts]]
    generating = {role: _unwrapped(model) for role, model in bare.items() if role in ("teacher", "student")}
    report = {
        "rows": [rows[role] for role in models],
        "generations": greedy_generations(generating, datamodule.tokenizer, starts),
        "notes": list(notes or []),
        "mask_audit": mask_audit,
        "summary": summary_line(rows),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "report_lm.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(run_dir / "report_lm.md", report_markdown(report))
    return report


def report_markdown(report: Mapping[str, Any]) -> str:
    lines = ["# Language-model report", "",
             "| model | role | perplexity | token acc. | agree top-1 | agree top-5 | KL | JSD | ECE | params | MB | tok/s b1 | tok/s b16 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        def cell(key: str, fmt: str) -> str:
            return format(r[key], fmt) if key in r else "n/a"
        lines.append(
            f"| {r['name']} | {r['role']} | {r['perplexity']:.2f} | {100 * r['accuracy']:.1f} % | "
            f"{cell('agreement', '.1%')} | {cell('top5_agreement', '.1%')} | {cell('kl', '.4f')} | {cell('jsd', '.4f')} | "
            f"{100 * r['ece']:.1f} % | {r['parameters'] / 1e6:.2f}M | {r['size_mb']:.1f} | "
            f"{cell('tokens_per_s_b1', ',.0f')} | {cell('tokens_per_s_b16', ',.0f')} |"
        )
    lines += ["", "KL(teacher || model) and JSD(0.5) per token in nats, by position of the predicting token:", ""]
    for r in report["rows"]:
        for bucket in r.get("by_position", []):
            lines.append(f"- {r['role']} positions {bucket['positions']} ({bucket['tokens']} tokens): "
                         f"KL {bucket['kl']:.4f}, JSD {bucket['jsd']:.4f}")
    lines += ["", "Greedy generations on held-out prompts:", ""]
    for g in report["generations"]:
        lines.append(f"- prompt: {g['prompt']!r}")
        lines += [f"  - {role}: {text!r}" for role, text in g.items() if role != "prompt"]
    if report.get("mask_audit"):
        lines += ["", "Loss-mask audit of the first training example (tokens that carry loss in [...]):", "", "```text",
                  report["mask_audit"], "```"]
    lines += [""] + [f"- {note}" for note in report["notes"]] + ["", f"- {report['summary']}", ""]
    return "\n".join(lines)


def _unwrapped(model: nn.Module) -> nn.Module:
    return model.model if isinstance(model, VocabularySlice) else model
