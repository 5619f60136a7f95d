"""build_adapter: student features mapped to the teacher's shape."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from distill.errors import DistillError
from distill.losses.adapters import build_adapter


@pytest.mark.parametrize(
    ("student", "teacher"),
    [
        ((2, 8, 4, 4), (2, 16, 4, 4)),  # channels only
        ((2, 8, 8, 8), (2, 16, 4, 4)),  # student map larger
        ((2, 8, 2, 2), (2, 4, 4, 4)),  # student map smaller
        ((2, 8, 6, 6), (2, 8, 3, 3)),  # spatial size only
        ((2, 32), (2, 64)),
        ((2, 5, 12), (2, 5, 20)),  # tokens
    ],
)
def test_adapter_maps_student_shape_to_teacher_shape(student, teacher):
    adapter = build_adapter(student, teacher)
    out = adapter(torch.randn(*student))
    assert tuple(out.shape) == teacher
    assert sum(p.numel() for p in adapter.parameters()) > 0


def test_conv_adapter_is_1x1_conv_with_batchnorm():
    adapter = build_adapter((4, 256, 2, 2), (4, 1024, 2, 2))
    convs = [m for m in adapter.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in adapter.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == 1 and convs[0].kernel_size == (1, 1)
    assert convs[0].in_channels == 256 and convs[0].out_channels == 1024
    assert len(norms) == 1 and norms[0].num_features == 1024


def test_linear_adapter_for_vectors():
    adapter = build_adapter((3, 512), (3, 2048))
    assert isinstance(adapter, nn.Linear)
    assert adapter.weight.shape == (2048, 512)


def test_identity_when_shapes_match_whatever_the_batch_size():
    adapter = build_adapter((2, 8, 4, 4), (7, 8, 4, 4))
    assert isinstance(adapter, nn.Identity)
    assert list(adapter.parameters()) == []


def test_student_map_is_resized_by_adaptive_average_pooling():
    adapter = build_adapter((1, 1, 4, 4), (1, 1, 2, 2))
    conv = next(m for m in adapter.modules() if isinstance(m, nn.Conv2d))
    nn.init.ones_(conv.weight)
    adapter.eval()  # BatchNorm with its initial statistics: the identity up to eps
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    expected = torch.tensor([[2.5, 4.5], [10.5, 12.5]])  # means of the 2x2 blocks
    assert torch.allclose(adapter(x)[0, 0], expected, atol=1e-3)


@pytest.mark.parametrize(
    ("student", "teacher"),
    [((2, 8, 4, 4), (2, 64)), ((2, 64), (2, 8, 4, 4)), ((2, 5, 8), (2, 6, 8)), ((2, 3, 4), (2, 3, 4, 4))],
)
def test_unmappable_shapes_are_a_clear_error_naming_both(student, teacher):
    with pytest.raises(DistillError) as info:
        build_adapter(student, teacher)
    message = str(info.value)
    assert str(list(student)) in message and str(list(teacher)) in message
