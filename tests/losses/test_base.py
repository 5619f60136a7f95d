"""LossTerm's class flags: every term of distill.losses sets only the flags it changes."""

from __future__ import annotations

import importlib
import pkgutil

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
