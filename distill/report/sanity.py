"""Warnings about a report's numbers, each one line: what looks wrong and why it matters."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: fewer test samples than this and an accuracy means little (one sample moves it by more than a point)
SMALL_SPLIT = 100


def _chance_margin(chance: float, samples: int) -> float:
    """Two binomial standard errors around chance accuracy: a model within it cannot be told from guessing."""
    return 2 * math.sqrt(chance * (1 - chance) / max(samples, 1))


def sanity_warnings(rows: Sequence[Mapping[str, Any]], num_classes: int | None, test_samples: int | None) -> list[str]:
    """One line per thing in the report's rows (as :func:`~distill.report.table.build_report` makes them) that looks wrong.

    ``num_classes`` and ``test_samples`` describe the test split (``None``: not known, those checks are skipped).
    """
    warnings: list[str] = []
    teacher = next(row for row in rows if row["role"] == "teacher")
    if test_samples is not None and test_samples < SMALL_SPLIT:
        warnings.append(
            f"the test split has only {test_samples} samples: each one moves the accuracy by "
            f"{100 / max(test_samples, 1):.1f} points, too coarse to compare models (use at least {SMALL_SPLIT})"
        )
    if num_classes and num_classes > 1 and test_samples:
        chance = 1 / num_classes
        for row in rows:
            accuracy = row.get("accuracy")
            if accuracy is not None and accuracy <= chance + _chance_margin(chance, test_samples):
                warnings.append(
                    f"the {row['role']} ({row['name']}) is at chance level: {100 * accuracy:.1f} % with "
                    f"{num_classes} classes (guessing gives {100 * chance:.1f} %)"
                )
    for row in rows:
        if row["role"] == "teacher":
            continue
        if row["role"] == "student" and row["name"] == teacher["name"]:
            warnings.append(
                f"teacher and student are the same architecture ({row['name']}): the student cannot be smaller or faster"
            )
        if row.get("parameters") and teacher.get("parameters") and row["parameters"] > teacher["parameters"]:
            warnings.append(
                f"the {row['role']} ({row['name']}) is larger than its teacher: "
                f"{row['parameters']:,} parameters vs {teacher['parameters']:,}"
            )
        for batch in ("1", "64"):
            ratio = row.get(f"speedup_b{batch}")
            if ratio is not None and ratio < 1 and not row.get(f"speedup_b{batch}_within_noise"):
                warnings.append(f"the {row['role']} ({row['name']}) is {1 / ratio:.1f}× slower than its teacher at batch {batch}")
    for gain in kd_gains(rows):
        if gain["points"] < 0:
            warnings.append(
                f"the distilled student ({gain['student']}) is {-gain['points']:.1f} points worse than the same model "
                "trained alone (baseline): the teacher did not help here"
            )
    return warnings


def kd_gains(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Accuracy points the distilled student gained over its baseline twin, one entry per student-baseline pair."""
    students = [row for row in rows if row["role"] == "student" and row.get("accuracy") is not None]
    baselines = [row for row in rows if row["role"] == "baseline" and row.get("accuracy") is not None]
    return [
        {"student": s["name"], "baseline": b["name"], "points": 100 * (s["accuracy"] - b["accuracy"])}
        for s in students for b in baselines
    ]


def kd_gain_line(points: float) -> str:
    """``KD vs student alone: +1.3 points``."""
    return f"KD vs student alone: {points:+.1f} points"
