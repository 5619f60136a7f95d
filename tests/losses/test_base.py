"""What every loss term shares: class flags set only where they change, one temperature rule."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
import torch

import distill.losses
from distill.losses.base import LossTerm

#: the class-level settings a term may set (LossTerm's flags and the bases' forms)
FLAGS = ("needs_labels", "needs_teacher", "needs_index", "compares_outputs", "needs_build", "feature_form", "one_layer_only")


def loss_term_classes() -> list[type[LossTerm]]:
    for info in pkgutil.walk_packages(distill.losses.__path__, "distill.losses."):
        importlib.import_module(info.name)
    found, todo = [], [LossTerm]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("distill.losses") and sub not in found:
                found.append(sub)
                todo.append(sub)
    return found


def restated_flags(cls: type) -> list[str]:
    """The flags ``cls`` sets to the value it would inherit anyway."""
    restated = []
    for flag in FLAGS:
        if flag in vars(cls):
            inherited = next((vars(base)[flag] for base in cls.__mro__[1:] if flag in vars(base)), None)
            if inherited == vars(cls)[flag]:
                restated.append(f"{cls.__module__}.{cls.__name__}.{flag} = {vars(cls)[flag]!r}")
    return restated


def test_no_term_restates_a_default():
    classes = loss_term_classes()
    assert {"KD", "FitNet", "TokenAttention", "TokenHiddenStates"} <= {c.__name__ for c in classes}
    restated = [line for cls in classes for line in restated_flags(cls)]
    assert restated == [], "flags set to the value they inherit: " + "; ".join(restated)


def test_a_restated_default_is_found():
    class Restating(LossTerm):
        needs_teacher = True  # LossTerm's default
        needs_labels = True  # a change: allowed

        def compute(self, outputs):
            return outputs.student.sum()

    assert restated_flags(Restating) == [f"{__name__}.Restating.needs_teacher = True"]


def test_the_temperature_rule_is_written_once():
    """Terms, pure functions and the ensemble check a softening temperature with one function."""
    from distill.errors import DistillError
    from distill.losses import KD
    from distill.losses.functional import kd_loss
    from distill.teachers.ensemble import TeacherEnsemble

    phrase = "temperature must be a finite number > 0"
    package = Path(distill.losses.__file__).parent.parent
    writers = sorted(str(p.relative_to(package)) for p in package.rglob("*.py") if phrase in p.read_text())
    # generation.temperature is the sampling setting of an LM's generate(), not a softening temperature
    assert writers == ["lm/generation.py", "losses/functional/_common.py"]
    for make, owner in ((lambda: KD(temperature=0), "KD"), (lambda: kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), 0.0), "kd_loss"),
                        (lambda: TeacherEnsemble({"a": torch.nn.Linear(2, 3)}, temperature=float("nan")), "TeacherEnsemble")):
        with pytest.raises(DistillError, match=rf"^{owner}: {phrase}, got"):
            make()
