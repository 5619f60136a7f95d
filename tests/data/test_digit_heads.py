import pytest
import torch

from distill.data import DigitHeadsDataModule, DigitsDataModule
from distill.data.digit_heads import head_targets
from distill.errors import DistillError


def test_targets_are_one_zero_or_missing_by_digit():
    digits = torch.tensor([1, 0, 2, 5])
    expected = torch.tensor([[1.0, -1.0], [0.0, 0.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert torch.equal(head_targets(digits, [[1, 0], [2, 0]]), expected)


def test_splits_hold_the_digits_own_targets_and_half_the_training_labels():
    dm = DigitHeadsDataModule(heads=[[1, 0], [3, 0]], label_fraction=0.5, image_size=8, channels=1)
    plain = DigitsDataModule(image_size=8, channels=1)
    dm.setup(), plain.setup()
    assert dm.num_classes == 2
    for name in ("train", "val", "test"):
        digits, targets = plain.splits[name].labels, dm.splits[name].labels
        assert torch.equal(dm.splits[name].inputs, plain.splits[name].inputs)
        full = head_targets(digits, [[1, 0], [3, 0]])
        known = targets != -1
        assert torch.equal(targets[known], full[known])  # what is kept is right
        for h in range(2):
            defined = int((full[:, h] != -1).sum())
            kept = int(known[:, h].sum())
            if name == "train":
                assert kept == round(0.5 * defined)
            else:
                assert kept == defined
    _, y = next(iter(dm.train_dataloader()))
    assert y.dtype == torch.float32 and y.shape == (64, 2)


def test_one_head_view_keeps_only_its_two_digits_with_every_label():
    dm = DigitHeadsDataModule(heads=[[2, 0]], label_fraction=1.0, only_defined=True, image_size=8, channels=1)
    dm.setup()
    targets = dm.splits["train"].labels
    assert set(targets.flatten().tolist()) == {0.0, 1.0}
    assert 230 < len(targets) < 270  # ~126 zeros and ~124 twos in 70 % of 1,797


def test_without_labels_training_yields_inputs_only():
    dm = DigitHeadsDataModule(labels=False, image_size=8, channels=1)
    assert isinstance(next(iter(dm.train_dataloader())), torch.Tensor)
    assert next(iter(dm.test_dataloader()))[1].shape[1] == 4


@pytest.mark.parametrize(
    "kwargs, message",
    [({"heads": [[1, 1]]}, "data.heads must be a list of [positive, negative] pairs"),
     ({"heads": [[1, 12]]}, "data.heads"),
     ({"label_fraction": 0}, "data.label_fraction must be in (0, 1], got 0")],
)
def test_bad_options(kwargs, message):
    with pytest.raises(DistillError) as error:
        DigitHeadsDataModule(**kwargs)
    assert message in str(error.value)
