import copy

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from distill.errors import DistillError
from distill.supervised import SupervisedModule


def test_trains_and_reports_accuracy(make_cnn, fast_trainer):
    torch.manual_seed(0)
    x = torch.randn(64, 1, 8, 8)
    y = (x.mean((1, 2, 3)) > 0).long()  # a learnable rule
    model = make_cnn(num_classes=2)
    before = copy.deepcopy(model.state_dict())
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    trainer = fast_trainer(max_epochs=15)
    trainer.fit(SupervisedModule(model), train_dataloaders=loader, val_dataloaders=loader)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    results = trainer.test(SupervisedModule(model), DataLoader(TensorDataset(x, y), batch_size=64), verbose=False)[0]
    expected = (model.eval()(x).argmax(1) == y).float().mean().item()
    assert results["test/acc"] == pytest.approx(expected)
    assert expected > 0.8


def test_needs_labels(make_cnn):
    with pytest.raises(DistillError, match="needs labels"):
        SupervisedModule(make_cnn()).training_step(torch.randn(4, 1, 8, 8), 0)


def test_yes_no_targets_train_with_binary_cross_entropy_on_the_known_ones(make_cnn, fast_trainer):
    torch.manual_seed(0)
    x = torch.randn(64, 1, 8, 8)
    y = (x.mean((1, 2, 3)) > 0).float().unsqueeze(1)  # one output, one yes/no target
    y[::4] = -1.0  # a quarter unknown: left out of loss and accuracy
    model = make_cnn(num_classes=1)
    trainer = fast_trainer(max_epochs=15)
    trainer.fit(SupervisedModule(model), train_dataloaders=DataLoader(TensorDataset(x, y), batch_size=16))
    results = trainer.test(SupervisedModule(model), DataLoader(TensorDataset(x, y), batch_size=64), verbose=False)[0]
    known = y != -1
    logits = model.eval()(x).detach()
    assert results["test/acc"] == pytest.approx(((logits[known] > 0) == (y[known] == 1)).float().mean().item())
    assert results["test/acc"] > 0.7  # it learns (chance is about 0.5)
    # the loss by hand: mean binary cross-entropy of the 48 known targets
    p = torch.sigmoid(logits[known])
    expected = -(y[known] * p.log() + (1 - y[known]) * (1 - p).log()).mean().item()
    assert results["test/loss"] == pytest.approx(expected, rel=1e-4)
