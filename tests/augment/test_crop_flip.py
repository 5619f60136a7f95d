"""Random shifts and flips on the batch tensor, checked against slicing by hand."""

import torch

from distill.augment import RandomCropFlip
from distill.augment.crop_flip import flip, shift_crop


def test_shift_crop_of_a_signal_by_hand():
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0]], [[5.0, 6.0, 7.0, 8.0]]])
    # padded by 2: [0 0 1 2 3 4 0 0]; offset 0 shifts right by 2, offset 4 shifts left by 2
    out = shift_crop(x, torch.tensor([0, 4]), padding=2, dim=2)
    assert out.tolist() == [[[0.0, 0.0, 1.0, 2.0]], [[7.0, 8.0, 0.0, 0.0]]]


def test_shift_crop_of_images_along_height_matches_slicing():
    x = torch.randn(3, 2, 5, 6)
    offsets = torch.tensor([0, 1, 2])
    out = shift_crop(x, offsets, padding=1, dim=2)
    padded = torch.nn.functional.pad(x, (0, 0, 1, 1))
    for i, o in enumerate(offsets.tolist()):
        assert torch.equal(out[i], padded[i, :, o : o + 5, :])


def test_flip_reverses_only_the_chosen_samples():
    x = torch.arange(6.0).view(2, 3)
    assert flip(x, torch.tensor([True, False])).tolist() == [[2.0, 1.0, 0.0], [3.0, 4.0, 5.0]]


def test_random_crop_flip_keeps_shapes_and_labels():
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 8, 8), torch.arange(8)
    out, labels = RandomCropFlip(padding=2, flip=True)((x, y))
    assert out.shape == x.shape and torch.equal(labels, y)
    assert RandomCropFlip(padding=0)(x).equal(x)
    signal = torch.randn(4, 40)
    assert RandomCropFlip(padding=3)(signal).shape == (4, 40)
