"""The feature-family base: layer names, reading captured outputs in the asked form, pair sums, the repr."""

from __future__ import annotations

import pytest
import torch

from distill.errors import DistillError
from distill.losses.base import StepOutputs
from distill.losses.feature_term import FeatureTerm


class MeanGap(FeatureTerm):
    feature_form = "flat"

    def pair_loss(self, student, teacher):
        return (student.mean(1) - teacher.mean(1)).abs().mean()


def test_pairs_are_read_flattened_and_summed():
    term = MeanGap(["a", "b"], ["x", "y"])
    outputs = StepOutputs(
        student=torch.zeros(2, 3),
        student_features={"a": torch.ones(2, 2, 2), "b": torch.zeros(2, 4)},
        teacher_features={"x": torch.zeros(2, 5), "y": torch.full((2, 1, 3), 3.0)},
    )
    students, teachers = term.features(outputs)
    assert [s.shape for s in students] == [(2, 4), (2, 4)] and [t.shape for t in teachers] == [(2, 5), (2, 3)]
    assert term.compute(outputs).item() == pytest.approx(1.0 + 3.0)
    assert repr(term) == "MeanGap(student_layer=['a', 'b'], teacher_layer=['x', 'y'], weight=1.0)"


def test_teacher_layers_default_to_the_students_and_one_layer_terms_refuse_two():
    assert MeanGap("layer3").teacher_layers == ("layer3",)

    class OneLayer(MeanGap):
        one_layer_only = True

    assert repr(OneLayer("avgpool")).startswith("OneLayer(student_layer=avgpool, teacher_layer=avgpool")
    with pytest.raises(DistillError, match=r"OneLayer: student_layer must name one layer, got \['a', 'b'\]"):
        OneLayer(["a", "b"])
    with pytest.raises(DistillError, match="MeanGap reads student layer"):
        MeanGap("a").compute(StepOutputs(student=torch.zeros(1, 1)))
