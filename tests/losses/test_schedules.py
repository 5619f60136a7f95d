import pytest
import torch

from distill.errors import DistillError
from distill.losses import KD
from distill.losses.schedules import Constant, LinearWarmup, Step


def test_constant():
    assert [Constant()(e) for e in range(3)] == [1.0, 1.0, 1.0]


def test_linear_warmup_by_hand():
    assert [LinearWarmup(4)(e) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_step_by_hand():
    schedule = Step(milestones=[2, 4], gamma=0.5)
    assert [schedule(e) for e in range(6)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


@pytest.mark.parametrize("make", [lambda: LinearWarmup(0), lambda: Step([]), lambda: Step([1], gamma=-1)])
def test_bad_schedules(make):
    with pytest.raises(DistillError):
        make()


def test_term_weight_follows_its_schedule():
    term = KD(weight=0.8).scheduled(LinearWarmup(2))
    assert term.weight_at(0) == pytest.approx(0.4) and term.weight_at(5) == pytest.approx(0.8)
    assert KD(weight=0.8).weight_at(3) == pytest.approx(0.8)


def test_module_uses_the_scheduled_weight(make_cnn, fast_trainer):
    from torch.utils.data import DataLoader

    from distill import DistillationModule

    module = DistillationModule(make_cnn(), make_cnn(), {"kd": KD(weight=1.0).scheduled(Step([1], gamma=0.0))})
    x = torch.randn(16, 1, 8, 8)
    seen = []

    class Record(__import__("lightning").Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append((trainer.current_epoch, float(outputs["loss"])))

    fast_trainer(max_epochs=2, callbacks=[Record()]).fit(module, DataLoader(x, batch_size=8))
    assert all(loss > 0 for epoch, loss in seen if epoch == 0)
    assert all(loss == 0 for epoch, loss in seen if epoch == 1)
