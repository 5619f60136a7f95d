"""Mixup and CutMix on the batch tensor: inputs and mixed labels checked against hand-worked values."""

import pytest
import torch

from distill.augment import Compose, CutMix, Mixup, OneOf, RandomCropFlip
from distill.augment.cutmix import cut_box, cutmix
from distill.augment.mixup import mixup
from distill.augment.soft_labels import mix_targets, soft_targets
from distill.errors import DistillError


def test_mixup_inputs_and_targets_by_hand():
    x = torch.tensor([[1.0, 2.0], [10.0, 20.0]])
    perm = torch.tensor([1, 0])
    assert mixup(x, 0.25, perm).tolist() == [[7.75, 15.5], [3.25, 6.5]]
    targets = mix_targets(soft_targets(torch.tensor([0, 2]), 3), 0.25, perm)
    assert targets.tolist() == [[0.25, 0.0, 0.75], [0.75, 0.0, 0.25]]


def test_a_mix_with_an_unlabelled_sample_is_unlabelled():
    targets = mix_targets(soft_targets(torch.tensor([0, -100, 1]), 2), 0.5, torch.tensor([0, 2, 1]))
    assert targets[0].tolist() == [1.0, 0.0]  # mixed with itself
    assert (targets[1:] == -100).all()


def test_mixup_on_a_batch_uses_one_lambda_and_keeps_the_batch_form():
    x, y = torch.randn(6, 1, 40), torch.tensor([0, 1, 2, 3, 4, 5])
    torch.manual_seed(0)  # the same draws as the augmentation makes: lam, then the partners
    lam = float(torch.distributions.Beta(0.4, 0.4).sample())
    perm = torch.randperm(6)
    torch.manual_seed(0)
    mixed, targets, index = Mixup(alpha=0.4, num_classes=6)((x, y, torch.arange(6)))
    assert index.tolist() == list(range(6))
    for i in range(6):
        j = int(perm[i])
        assert torch.allclose(mixed[i], lam * x[i] + (1 - lam) * x[j], atol=1e-6)
        expected = torch.zeros(6)
        expected[i] += lam
        expected[j] += 1 - lam
        assert torch.allclose(targets[i], expected, atol=1e-6)


def test_cutmix_segment_and_label_weight_by_hand():
    x = torch.arange(20.0).view(2, 1, 10)
    box = cut_box((10,), lam=0.7, centre=(0.5,))  # a segment of 3 of 10 samples around the middle
    assert box == ((3, 6),)
    mixed, kept = cutmix(x, box, torch.tensor([1, 0]))
    assert kept == pytest.approx(0.7)
    assert mixed[0, 0].tolist() == [0, 1, 2, 13, 14, 15, 6, 7, 8, 9]


def test_cutmix_box_on_images_is_clipped_at_the_edge_and_the_label_weight_follows():
    box = cut_box((8, 8), lam=0.75, centre=(0.0, 0.0))  # a 4x4 box centred on the corner: 2x2 remains
    assert box == ((0, 2), (0, 2))
    x = torch.zeros(2, 1, 8, 8)
    x[1] = 1.0
    mixed, kept = cutmix(x, box, torch.tensor([1, 0]))
    assert kept == pytest.approx(1 - 4 / 64)
    assert mixed[0].sum().item() == 4.0


def test_cutmix_targets_sum_to_one_and_give_the_kept_share_to_the_own_label():
    torch.manual_seed(1)
    x = torch.randn(4, 3, 8, 8)
    mixed, targets = CutMix(num_classes=4)((x, torch.arange(4)))
    for i in range(4):
        own_pixels = (mixed[i] == x[i]).all(0).float().mean().item()
        assert targets[i].sum().item() == pytest.approx(1.0)
        if targets[i, i] < 1:  # mixed with another sample
            assert targets[i, i].item() == pytest.approx(own_pixels, abs=1e-6)


def test_num_classes_is_needed_for_class_labels_and_bad_settings_are_one_line():
    with pytest.raises(DistillError, match="num_classes"):
        Mixup()((torch.randn(2, 3), torch.tensor([0, 1])))
    with pytest.raises(DistillError, match="alpha"):
        Mixup(alpha=0)
    with pytest.raises(DistillError, match="token ids"):
        Mixup(num_classes=2)({"input_ids": torch.ones(2, 3, dtype=torch.long), "attention_mask": torch.ones(2, 3)})


def test_inputs_only_batches_are_mixed_without_labels():
    x = torch.randn(4, 1, 40)
    assert Mixup()(x).shape == x.shape
    out = CutMix()({"x": x, "index": torch.arange(4)})
    assert out["x"].shape == x.shape and "labels" not in out


def test_compose_sets_the_number_of_classes_of_its_steps_and_one_of_mixes_labels():
    augment = Compose([RandomCropFlip(padding=2), OneOf([Mixup(), CutMix()])]).for_classes(5)
    assert augment.mixes_labels and augment.steps[1].steps[0].num_classes == 5
    _, targets = augment((torch.randn(6, 1, 40), torch.tensor([0, 1, 2, 3, 4, 0])))
    assert targets.shape == (6, 5) and targets.sum(1).tolist() == pytest.approx([1.0] * 6)
