"""Measure a trained student (or a teacher alone) on the test set: the run report's numbers, without Hydra.

>>> from distill.report import evaluate
>>> result = evaluate(student, teacher, datamodule, per_sample=True, out_dir="eval")  # doctest: +SKIP
>>> result["model"]["accuracy"], result["model"]["agreement"]  # doctest: +SKIP

``python -m distill.evaluate checkpoint=PATH`` (:mod:`distill.evaluate`) is the
command line around :func:`evaluate`: it rebuilds the student, its teacher and
the data from a run directory. The measuring is the run report's own
(:func:`distill.report.measurement.measure_models`), so both give the same numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from distill.errors import DistillError
from distill.io import atomic_write_text
from distill.losses import KD, CrossEntropy
from distill.losses.base import LossTerm
from distill.models.fingerprint import weights_sha256
from distill.report.measurement import evaluation_loader, measure_models
from distill.report.metrics import reliability_bins
from distill.report.plots import plot_reliability
from distill.report.per_sample import per_sample_losses, write_per_sample_csv
from distill.report.table import build_report, report_markdown

ROLES = ("student", "teacher")
#: the files :func:`evaluate` writes into ``out_dir``
JSON_NAME, MARKDOWN_NAME, PER_SAMPLE_NAME = "evaluation.json", "evaluation.md", "per_sample.csv"


def default_loss() -> dict[str, LossTerm]:
    """The terms of ``conf/loss/kd.yaml`` (KD at T=4 weighted 0.9, cross-entropy weighted 0.1)."""
    return {"kd": KD(temperature=4.0, weight=0.9), "ce": CrossEntropy(weight=0.1)}


def evaluate(
    student: nn.Module,
    teacher: nn.Module | None,
    datamodule: Any,
    loss: Mapping[str, LossTerm] | LossTerm | None = None,
    per_sample: bool = False,
    out_dir: str | Path | None = None,
    *,
    role: str = "student",
    names: Mapping[str, str] | None = None,
    device: str | torch.device = "cpu",
    latency: str | bool = "full",
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Measure ``student`` on the test set of ``datamodule``, against ``teacher``.

    Args:
        student: the model to measure (in ``role="teacher"`` mode: a teacher, measured alone).
        teacher: its teacher, for the agreement and the distillation terms; ``None``
            only with ``role="teacher"``.
        datamodule: a data module (its ``test_dataloader()`` is used, after
            ``prepare_data()`` and ``setup("test")``) or a data loader of the test set.
        loss: the loss terms whose per-sample values ``per_sample`` computes (a
            mapping of name to term, or one term); ``None``: :func:`default_loss`.
        per_sample: also compute each test sample's predictions and loss-term values
            (:func:`distill.report.per_sample_losses`): returned under ``"per_sample"``
            and written to ``per_sample.csv``.
        out_dir: where to write ``evaluation.json``, ``evaluation.md``, ``per_sample.csv`` and
            (with labels) ``reliability.png``; ``None`` writes nothing.
        role: ``"student"`` or ``"teacher"``.
        names: model names for the report, by role (default: the class names).
        device: where the models run for the metrics; latency is measured on the CPU.
        latency: ``full`` (CPU latency at batch 1 and 64), ``quick`` (batch 1, short) or ``off``
            (those columns are ``None``); ``True``/``False`` mean ``full``/``off``.
        meta: extra entries for the report's setting (checkpoint, run directory, ...).

    Returns the report (``meta``, ``rows``: one per model, as in the
    distillation report, see :func:`distill.report.build_report`) plus

    - ``model``: the row of the measured model (``accuracy``, ``top5_accuracy``
      with at least 10 classes, ``agreement``, ``ece``, ``nll``, ``parameters``,
      ``size_mb``, ``latency_b1_ms``, ``latency_b64_ms``, ...);
    - ``losses``: with ``per_sample``, the mean over the test set of every term
      that has a per-sample value (KD, CrossEntropy, LogitMSE), unweighted;
      ``losses_without_per_sample_values`` names the others;
    - ``per_sample``: with ``per_sample``, the columns (tensors) of the CSV;
    - ``files``: the paths written.

    The models are put in eval mode; their training mode is restored.
    """
    if role not in ROLES:
        raise DistillError(f"evaluate: role must be one of {', '.join(ROLES)}, got {role!r}")
    if role == "student" and teacher is None:
        raise DistillError(
            "evaluate: a student is measured against its teacher (agreement, distillation terms); "
            "give the teacher, or role='teacher' to measure a model alone"
        )
    if role == "teacher" and teacher is not None:
        raise DistillError("evaluate: role='teacher' measures the given model alone; pass teacher=None")
    if per_sample and teacher is None:
        raise DistillError("evaluate: per_sample compares the student with its teacher; it needs the teacher")
    names = dict(names or {})
    names.setdefault(role, type(student).__name__)
    if teacher is not None:
        names.setdefault("teacher", type(teacher).__name__)

    loader = evaluation_loader(datamodule)
    models = {"teacher": (names["teacher"], teacher)} if teacher is not None else {}
    models[role] = (names[role], student)
    measured = measure_models(models, loader, device, latency=latency)
    setting = {
        "role": role,
        "data": type(datamodule).__name__,
        "samples": len(measured.logits[role]),
        "device": str(device),
        "threads": torch.get_num_threads(),
        **({"teacher_sha256": weights_sha256(teacher)} if teacher is not None else {}),
        **(meta or {}),
    }
    result = build_report(measured.rows, setting)
    result["model"] = next(row for row in result["rows"] if row["role"] == role)
    result["files"] = {}

    if per_sample:
        terms = _as_terms(default_loss() if loss is None else loss)
        values = _per_sample_values(student, teacher, terms, loader, device)
        result["per_sample"] = values
        result["losses"] = {
            name: float(values[f"loss/{name}"].double().mean()) for name in terms if f"loss/{name}" in values
        }
        result["losses_without_per_sample_values"] = [name for name in terms if f"loss/{name}" not in values]
    if out_dir is not None:
        figures = {}
        if measured.labels is not None:  # the reliability diagram, as the run's report draws it
            bins = {f"{r}: {name}": reliability_bins(measured.logits[r], measured.labels) for r, (name, _) in models.items()}
            figures["reliability"] = str(plot_reliability(bins, Path(out_dir) / "reliability.png"))
        result["files"] = write_evaluation(result, out_dir, figures)
    return result


def write_evaluation(result: Mapping[str, Any], out_dir: str | Path, figures: Mapping[str, str] | None = None) -> dict[str, str]:
    """Write ``evaluation.json``, ``evaluation.md`` and (with per-sample values) ``per_sample.csv``, atomically;
    ``figures`` (already drawn) are listed with them."""
    out_dir = Path(out_dir)
    files: dict[str, str] = dict(figures or {})
    if "per_sample" in result:
        files["per_sample"] = str(write_per_sample_csv(result["per_sample"], out_dir / PER_SAMPLE_NAME))
    files["json"] = str(out_dir / JSON_NAME)
    files["markdown"] = str(out_dir / MARKDOWN_NAME)
    record = {key: value for key, value in result.items() if key != "per_sample"}
    record["files"] = files
    atomic_write_text(out_dir / JSON_NAME, json.dumps(record, indent=2, default=str) + "\n")
    atomic_write_text(out_dir / MARKDOWN_NAME, evaluation_markdown(result))
    return files


def evaluation_markdown(result: Mapping[str, Any]) -> str:
    """The evaluation as Markdown: the report's table and verdicts, then the per-sample loss means."""
    text = report_markdown(result).replace("# Distillation report", "# Evaluation", 1)
    losses = result.get("losses")
    if losses:
        lines = ["## Loss terms on the test set (unweighted means of per_sample.csv)", ""]
        lines += [f"- {name}: {value:.6g}" for name, value in losses.items()]
        skipped = result.get("losses_without_per_sample_values") or []
        if skipped:
            lines.append(f"- without a per-sample value (compare whole batches or read features): {', '.join(skipped)}")
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    return text


def _as_terms(loss: Mapping[str, LossTerm] | LossTerm) -> dict[str, LossTerm]:
    if isinstance(loss, LossTerm):
        return {type(loss).__name__.lower(): loss}
    terms = {str(name): term for name, term in loss.items() if term is not None}
    bad = [name for name, term in terms.items() if not isinstance(term, LossTerm)]
    if bad or not terms:
        raise DistillError(
            "evaluate: loss must be a LossTerm or a non-empty mapping of name to LossTerm"
            + (f"; '{bad[0]}' is a {type(terms[bad[0]]).__name__}" if bad else "")
        )
    return terms


def _per_sample_values(
    student: nn.Module, teacher: nn.Module, terms: Mapping[str, LossTerm], loader: Any, device: str | torch.device
) -> dict[str, Tensor]:
    """:func:`per_sample_losses` on a distillation module built around the two models, its hooks removed after."""
    from distill.module import DistillationModule  # Lightning: imported when needed

    teacher_requires_grad = [p.requires_grad for p in teacher.parameters()]
    teacher_training = teacher.training
    module = DistillationModule(student, teacher, dict(terms)).to(device)
    try:
        return per_sample_losses(module, loader)
    finally:
        # the module registered forward hooks for terms that read features and froze the teacher: undo both
        module.remove_hooks()
        for parameter, flag in zip(teacher.parameters(), teacher_requires_grad):
            parameter.requires_grad_(flag)
        teacher.train(teacher_training)
