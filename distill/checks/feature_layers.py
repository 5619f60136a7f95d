"""The feature terms' layers, checked before the teacher trains: their names on both models, then one dry shape run.

A misspelt ``loss.fitnet.teacher_layer`` would otherwise fail only once the (possibly hours-long)
teacher training is over. The teacher's architecture is built with fresh weights for this (the trained
or loaded teacher comes later); the student and the terms are copies, so nothing of the run changes.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from distill.errors import DistillError
from distill.losses.base import LossTerm

log = logging.getLogger("distill")


def feature_terms(loss: Mapping[str, LossTerm]) -> dict[str, LossTerm]:
    """The terms that read a named layer of the student or the teacher."""
    return {name: term for name, term in loss.items() if term.student_layers or term.teacher_layers}


def check_feature_layers(loss: Mapping[str, LossTerm], student: nn.Module, teacher: nn.Module, batch: Any) -> None:
    """Raise :class:`DistillError` when a feature term names a layer the student or ``teacher`` lacks,
    or when its adapters cannot be built from the models' outputs on ``batch``.

    ``teacher`` is the teacher's architecture (any weights). Errors other than distill's own are left
    to the run, which meets them at its first step.
    """
    from distill.module import DistillationModule  # the module imports the checks

    terms = feature_terms(loss)
    if not terms:
        return
    with torch.random.fork_rng(devices=[]):
        module = DistillationModule(copy.deepcopy(student), teacher, copy.deepcopy(terms))  # the layer names
        try:
            module.build(batch)  # the dry shape run: adapters built from both models' features
        except DistillError:
            raise
        except Exception as error:  # noqa: BLE001 - the run's first step reports it in its own words
            log.debug("the feature layers' dry run did not complete: %s", error)
        finally:
            module.remove_hooks()
