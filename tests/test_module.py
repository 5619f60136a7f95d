"""DistillationModule: the frozen teacher, batch formats, unlabeled data, logging, checks."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from distill import DistillationModule, DistillError
from distill.losses import KD, CrossEntropy, LogitMSE


def teacher_snapshot(teacher: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in teacher.state_dict().items()}


def fit(module, trainer, loader):
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    return trainer


@pytest.fixture
def data():
    torch.manual_seed(0)
    x = torch.randn(48, 1, 8, 8)
    y = torch.randint(0, 10, (48,))
    return x, y


def test_teacher_is_frozen_unchanged_and_never_optimised(make_cnn, fast_trainer, data):
    student, teacher = make_cnn(), make_cnn()
    teacher.train()  # handed over in train mode: the module must freeze it anyway
    before = teacher_snapshot(teacher)
    student_before = copy.deepcopy(student.state_dict())
    module = DistillationModule(student, teacher, {"kd": KD(4.0, weight=0.9), "ce": CrossEntropy(weight=0.1)})

    seen_modes = []

    class RecordTeacherMode(__import__("lightning").Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen_modes.append(pl_module.teacher.training)

    loader = DataLoader(TensorDataset(*data), batch_size=16)
    trainer = fast_trainer(max_epochs=2, callbacks=[RecordTeacherMode()])
    fit(module, trainer, loader)

    assert seen_modes and not any(seen_modes), "teacher left eval mode during training"
    assert not teacher.training
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    optimised = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert optimised.isdisjoint(id(p) for p in teacher.parameters())
    assert optimised == {id(p) for p in student.parameters()}
    after = teacher.state_dict()
    assert after.keys() == before.keys()
    for key in before:  # BatchNorm running statistics included
        assert torch.equal(before[key], after[key]), key
    assert any(not torch.equal(student_before[k], v) for k, v in student.state_dict().items())


def test_teacher_stays_in_eval_mode_when_module_is_put_in_train_mode(make_cnn):
    module = DistillationModule(make_cnn(), make_cnn(), KD())
    module.train()
    assert module.student.training and not module.teacher.training


def test_teacher_runs_without_autograd(make_cnn):
    seen = []
    teacher = make_cnn()
    teacher.register_forward_hook(lambda mod, inp, out: seen.append(out.requires_grad or torch.is_grad_enabled()))
    module = DistillationModule(make_cnn(), teacher, KD())
    module.training_step((torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])), 0)
    assert seen == [False]


def test_checkpoint_holds_student_not_teacher(make_cnn, fast_trainer, data, tmp_path):
    teacher = make_cnn()
    module = DistillationModule(make_cnn(), teacher, KD(), teacher_source="checkpoint /x/teacher.pt")
    trainer = fast_trainer(enable_checkpointing=True, default_root_dir=tmp_path)
    fit(module, trainer, DataLoader(TensorDataset(*data), batch_size=16))
    path = tmp_path / "module.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    keys = ckpt["state_dict"].keys()
    assert keys and all(k.startswith(("student.", "loss_terms.")) for k in keys)
    assert ckpt["distill"]["teacher_source"] == "checkpoint /x/teacher.pt"
    assert len(ckpt["distill"]["teacher_sha256"]) == 64
    # no model was pickled into the hyper-parameters
    assert set(ckpt["hyper_parameters"]) == {"loss", "teacher_source", "class_dim"}


def test_module_moves_teacher_with_it(make_cnn):
    module = DistillationModule(make_cnn(), make_cnn(), KD())
    module.to(torch.float64)
    assert next(module.teacher.parameters()).dtype == torch.float64


def _step(module, batch):
    return module.training_step(batch, 0)


@pytest.mark.parametrize("form", ["tensor", "tuple1", "tuple2", "tuple3", "list2", "dict", "dict_labels"])
def test_batch_formats(make_cnn, form):
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    batch = {
        "tensor": x,
        "tuple1": (x,),
        "tuple2": (x, y),
        "tuple3": (x, y, torch.arange(4)),
        "list2": [x, y],
        "dict": {"input": x},
        "dict_labels": {"input": x, "labels": y},
    }[form]
    labelled = form in ("tuple2", "tuple3", "list2", "dict_labels")
    loss = {"kd": KD(), "ce": CrossEntropy()} if labelled else {"kd": KD()}
    module = DistillationModule(make_cnn(), make_cnn(), loss)
    value = _step(module, batch)
    assert value.ndim == 0 and torch.isfinite(value)


class KwargsModel(nn.Module):
    """A model called with keyword arguments that returns an object with .logits, like Hugging Face models."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.head = nn.Linear(8, num_classes)

    def forward(self, input_ids, attention_mask):
        hidden = (self.embed(input_ids) * attention_mask.unsqueeze(-1)).mean(1)
        return SimpleNamespace(logits=self.head(hidden))


def test_mapping_batch_with_keyword_inputs_and_logits_attribute():
    batch = {
        "input_ids": torch.randint(0, 20, (4, 6)),
        "attention_mask": torch.ones(4, 6),
        "labels": torch.tensor([0, 1, 2, 0]),
    }
    module = DistillationModule(KwargsModel(), KwargsModel(), {"kd": KD(), "ce": CrossEntropy()})
    assert torch.isfinite(_step(module, batch))


def test_unlabeled_distillation_trains(make_cnn, fast_trainer):
    x = torch.randn(32, 1, 8, 8)
    student = make_cnn()
    before = copy.deepcopy(student.state_dict())
    module = DistillationModule(student, make_cnn(), {"kd": KD(), "mse": LogitMSE()})
    loader = DataLoader(x, batch_size=8)  # bare tensors, no labels anywhere
    fast_trainer().fit(module, train_dataloaders=loader, val_dataloaders=loader)
    assert any(not torch.equal(before[k], v) for k, v in student.state_dict().items())


def test_term_needing_labels_on_unlabeled_batch_names_the_term(make_cnn):
    module = DistillationModule(make_cnn(), make_cnn(), {"kd": KD(), "task": CrossEntropy()})
    with pytest.raises(DistillError, match="'task'.*needs labels"):
        _step(module, torch.randn(4, 1, 8, 8))


def test_output_shape_mismatch_names_both_shapes(make_cnn):
    module = DistillationModule(make_cnn(num_classes=10), make_cnn(num_classes=1000), KD())
    with pytest.raises(DistillError, match=r"\(4, 10\).*\(4, 1000\)"):
        _step(module, torch.randn(4, 1, 8, 8))


def test_labels_outside_class_range(make_cnn):
    module = DistillationModule(make_cnn(num_classes=3), make_cnn(num_classes=3), {"ce": CrossEntropy()})
    with pytest.raises(DistillError, match="labels range from 0 to 7 but the student predicts 3"):
        _step(module, (torch.randn(2, 1, 8, 8), torch.tensor([0, 7])))


def test_probabilities_from_teacher_warn(make_cnn):
    teacher = nn.Sequential(make_cnn(), nn.Softmax(dim=1))
    module = DistillationModule(make_cnn(), teacher, KD())
    with pytest.warns(UserWarning, match="look like probabilities"):
        _step(module, torch.randn(4, 1, 8, 8))


def test_non_finite_loss_is_caught_with_the_term_named(make_cnn):
    module = DistillationModule(make_cnn(), make_cnn(), {"kd": KD(), "ce": CrossEntropy()})
    x = torch.randn(4, 1, 8, 8)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(DistillError, match=r"kd, ce became non-finite at step 0 \(epoch 0\)"):
        _step(module, (x, torch.tensor([0, 1, 2, 3])))


def test_total_is_weighted_sum_and_each_term_is_logged(make_cnn, fast_trainer, data):
    module = DistillationModule(make_cnn(), make_cnn(), {"kd": KD(2.0, weight=0.7), "ce": CrossEntropy(weight=0.3)})
    batch = (data[0][:8], data[1][:8])
    total = module.training_step(batch, 0)
    outputs = module._run_models(batch, with_teacher=True)
    kd = module.loss_terms["kd"](outputs)
    ce = module.loss_terms["ce"](outputs)
    assert total.item() == pytest.approx(0.7 * kd.item() + 0.3 * ce.item(), rel=1e-5)

    loader = DataLoader(TensorDataset(*data), batch_size=16)
    trainer = fast_trainer()
    fit(module, trainer, loader)
    logged = set(trainer.logged_metrics)
    assert {"train/loss", "train/loss/kd", "train/loss/ce"} <= logged
    assert {"val/loss", "val/loss/kd", "val/loss/ce", "val/acc", "val/agreement", "val/teacher_acc"} <= logged


def test_teacher_validation_accuracy_logged_once(make_cnn, fast_trainer, data, tmp_path):
    import csv

    from lightning.pytorch.loggers import CSVLogger

    module = DistillationModule(make_cnn(), make_cnn(), {"kd": KD(), "ce": CrossEntropy()})
    logger = CSVLogger(tmp_path, name="logs", version="")
    loader = DataLoader(TensorDataset(*data), batch_size=16)
    fit(module, fast_trainer(max_epochs=3, logger=logger), loader)
    rows = list(csv.DictReader(open(tmp_path / "logs" / "metrics.csv")))
    assert [r["epoch"] for r in rows if r.get("val/acc")] == ["0", "1", "2"]
    assert [r["epoch"] for r in rows if r.get("val/teacher_acc")] == ["0"]


def test_agreement_and_accuracy_values(make_cnn, fast_trainer):
    # a student identical to the teacher agrees on every sample and has the teacher's accuracy
    teacher = make_cnn()
    student = copy.deepcopy(teacher)
    x, y = torch.randn(40, 1, 8, 8), torch.randint(0, 10, (40,))
    module = DistillationModule(student, teacher, {"kd": KD(), "ce": CrossEntropy()})
    results = fast_trainer().test(module, DataLoader(TensorDataset(x, y), batch_size=16), verbose=False)[0]
    expected_acc = (teacher.eval()(x).argmax(1) == y).float().mean().item()
    assert results["test/agreement"] == pytest.approx(1.0)
    assert results["test/acc"] == pytest.approx(expected_acc)
    assert results["test/teacher_acc"] == pytest.approx(expected_acc)


def test_single_term_and_switched_off_terms():
    module = DistillationModule(nn.Linear(3, 2), nn.Linear(3, 2), KD())
    assert list(module.loss_terms) == ["kd"]
    module = DistillationModule(nn.Linear(3, 2), nn.Linear(3, 2), {"kd": KD(), "ce": None})
    assert list(module.loss_terms) == ["kd"]
    with pytest.raises(DistillError, match="not a distill.losses.LossTerm"):
        DistillationModule(nn.Linear(3, 2), nn.Linear(3, 2), {"kd": nn.MSELoss()})


def test_custom_optimizer_and_scheduler(make_cnn):
    import functools

    module = DistillationModule(
        make_cnn(),
        make_cnn(),
        KD(),
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
        lr_scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1),
    )
    config = module.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.AdamW)
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)


def test_input_errors_inside_a_term_name_the_term():
    from distill.losses import MaskedBCE

    module = DistillationModule(nn.Linear(4, 3), nn.Linear(4, 3), {"multi": MaskedBCE()})
    with pytest.raises(DistillError, match=r"loss term 'multi' \(MaskedBCE\): .*\(2, 3\).*\(2, 5\)"):
        module.training_step((torch.randn(2, 4), torch.zeros(2, 5)), 0)


def test_grad_norm_diagnostic_logs_each_weighted_terms_gradient_norm(make_cnn):
    from distill.diagnostics import GradientNorms

    torch.manual_seed(0)
    student = make_cnn()
    module = DistillationModule(
        student, make_cnn(), {"kd": KD(2.0, weight=0.5), "ce": CrossEntropy(weight=2.0)}, log_grad_norms=True
    )
    (callback,) = module.configure_callbacks()  # the module hands Lightning the diagnostic
    assert isinstance(callback, GradientNorms)
    logged = {}
    module.log = lambda name, value, **kwargs: logged.__setitem__(name, value)
    batch = (torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))
    callback.on_fit_start(None, module)
    loss = module.training_step(batch, 0)
    callback.on_before_backward(None, module, loss)  # where Lightning calls it: before the step's backward
    callback.on_train_batch_end(None, module, loss, batch, 0)
    assert module.last_step is None  # the step's activations are not kept past it

    outputs = module._run_models(batch, with_teacher=True)
    for name, weight in (("kd", 0.5), ("ce", 2.0)):
        student.zero_grad()
        (weight * module.loss_terms[name](outputs)).backward(retain_graph=True)
        expected = torch.sqrt(sum((p.grad**2).sum() for p in student.parameters() if p.grad is not None))
        assert logged[f"train/grad_norm/{name}"].item() == pytest.approx(expected.item(), rel=1e-4)


def test_grad_norms_are_logged_by_a_real_fit(make_cnn, fast_trainer, data, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    module = DistillationModule(make_cnn(), make_cnn(), {"kd": KD(), "ce": CrossEntropy()}, log_grad_norms=True)
    trainer = fast_trainer(max_epochs=1, logger=CSVLogger(tmp_path, name="g"), log_every_n_steps=1)
    trainer.fit(module, train_dataloaders=DataLoader(TensorDataset(*data), batch_size=16))
    header = (tmp_path / "g" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert "train/grad_norm/kd" in header and "train/grad_norm/ce" in header


def test_a_bad_training_label_gets_the_first_batch_message_under_trainer_fit(make_cnn, fast_trainer, data):
    # the validation data is fine, so the sanity check passes; the first *training* batch must be checked too
    x, y = data
    bad = y.clone()
    bad[3] = 10  # the student predicts 10 classes: 0..9
    module = DistillationModule(make_cnn(), make_cnn(), {"kd": KD(), "ce": CrossEntropy()})
    trainer = fast_trainer(max_epochs=1, num_sanity_val_steps=1)
    with pytest.raises(DistillError, match=r"labels range from \d+ to 10 but the student predicts 10 classes"):
        trainer.fit(
            module,
            train_dataloaders=DataLoader(TensorDataset(x, bad), batch_size=16),
            val_dataloaders=DataLoader(TensorDataset(x, y), batch_size=16),
        )


def test_hooks_are_removed_and_attached_through_the_public_methods(make_cnn):
    from distill.losses import AttentionTransfer

    student, teacher = make_cnn(), make_cnn()
    module = DistillationModule(student, teacher, {"at": AttentionTransfer("2"), "ce": CrossEntropy()})
    x = torch.randn(4, 1, 8, 8)
    student(x), teacher(x)
    student_features, teacher_features = module.captured_features()
    assert set(student_features) == set(teacher_features) == {"2"}
    assert student_features["2"].shape == (4, 8, 8, 8)
    module.remove_hooks()
    student(x), teacher(x)
    assert not student[2]._forward_hooks and not teacher[2]._forward_hooks
    module.attach_hooks()
    student(x)
    module.discard_captured_features()
    with pytest.raises(DistillError, match="did not run"):
        module.captured_features()


# -- teacher-output cache and teacher dtype -------------------------------------------


def _indexed_loader(n=40, shuffle=True):
    from distill.data import TensorClassificationDataset

    torch.manual_seed(3)
    dataset = TensorClassificationDataset(torch.randn(n, 1, 8, 8), torch.randint(0, 10, (n,)), with_index=True)
    return DataLoader(dataset, batch_size=8, shuffle=shuffle)


class ForbiddenInTraining(nn.Module):
    """Wraps a teacher and fails if it is called while the module trains."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.watched = lambda: False  # set to "is the module training?" (a plain attribute: no module cycle)

    def forward(self, x):
        assert not self.watched(), "teacher ran in a training step"
        return self.model(x)


def _train(student, teacher, loader, fast_trainer, **options):
    torch.manual_seed(0)
    module = DistillationModule(student, teacher, {"kd": KD(temperature=4), "ce": CrossEntropy()}, **options)
    if isinstance(teacher, ForbiddenInTraining):
        teacher.watched = lambda: module.training
    torch.manual_seed(0)
    fast_trainer(max_epochs=2).fit(module, train_dataloaders=loader)
    return module


def test_training_from_the_teacher_output_cache_skips_the_teacher_and_learns_the_same(make_cnn, fast_trainer, tmp_path):
    from distill.teachers import TeacherOutputCache

    torch.manual_seed(1)
    teacher, student = make_cnn(width=8), make_cnn(width=4)
    cache = TeacherOutputCache.open_or_build(tmp_path, {"k": 1}, teacher, _indexed_loader(shuffle=False))
    live = _train(copy.deepcopy(student), copy.deepcopy(teacher), _indexed_loader(), fast_trainer)
    cached = _train(
        copy.deepcopy(student), ForbiddenInTraining(copy.deepcopy(teacher)), _indexed_loader(), fast_trainer,
        teacher_outputs=cache,
    )
    # same shuffles, same targets: the same student up to float rounding of the teacher's batched forward
    for key, value in live.student.state_dict().items():
        torch.testing.assert_close(cached.student.state_dict()[key], value, rtol=1e-4, atol=1e-5)


def test_cached_training_needs_indices(make_cnn, tmp_path):
    from distill.teachers import TeacherOutputCache

    teacher = make_cnn()
    cache = TeacherOutputCache.open_or_build(tmp_path, {"k": 1}, teacher, _indexed_loader(shuffle=False))
    module = DistillationModule(make_cnn(), teacher, {"kd": KD()}, teacher_outputs=cache)
    with pytest.raises(DistillError, match="needs sample indices in each training batch"):
        module.training_step((torch.randn(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)), 0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, "float16"])
def test_teacher_in_half_precision_weights(make_cnn, dtype):
    torch.manual_seed(0)
    teacher = make_cnn(width=8)
    reference = copy.deepcopy(teacher).eval()
    module = DistillationModule(make_cnn(width=4), teacher, {"kd": KD()}, teacher_dtype=dtype)
    expected = torch.bfloat16 if dtype is torch.bfloat16 else torch.float16
    assert {p.dtype for p in module.teacher.parameters()} == {expected}
    x = torch.randn(6, 1, 8, 8)
    outputs = module._run_models(x, with_teacher=True)
    assert outputs.teacher.dtype == torch.float32  # losses see float32 outputs
    # the half-precision teacher gives nearly the float32 teacher's logits (half as many bytes per weight)
    with torch.no_grad():
        torch.testing.assert_close(outputs.teacher, reference(x), rtol=0.05, atol=0.05)
    assert torch.isfinite(module.training_step(x, 0))


def test_unknown_teacher_dtype(make_cnn):
    with pytest.raises(DistillError, match="unknown teacher dtype 'half8'; choose bfloat16, float16 or float32"):
        DistillationModule(make_cnn(), make_cnn(), {"kd": KD()}, teacher_dtype="half8")


def test_a_list_of_teachers_is_averaged(make_cnn):
    from distill.teachers import TeacherEnsemble

    torch.manual_seed(0)
    first, second = make_cnn(width=8), make_cnn(width=6)
    module = DistillationModule(make_cnn(width=4), [first, second], {"kd": KD()})
    assert isinstance(module.teacher, TeacherEnsemble)
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        expected = (first.eval()(x) + second.eval()(x)) / 2
    torch.testing.assert_close(module._run_models(x, with_teacher=True).teacher, expected)
    assert not any(p.requires_grad for p in first.parameters())


def test_cached_rows_are_read_before_the_batch_moves_to_the_device(make_cnn, fast_trainer, tmp_path):
    import inspect

    from distill.teachers import TeacherOutputCache

    teacher = make_cnn(width=8)
    cache = TeacherOutputCache.open_or_build(tmp_path, {"k": 1}, teacher, _indexed_loader(shuffle=False))
    read, callers = cache.read, []

    def spy(index):
        stack = inspect.stack()
        callers.append((stack[2].function, index.device.type))  # stack[1] is the cache's own prefetch
        return read(index)

    cache.read = spy
    module = DistillationModule(make_cnn(width=4), teacher, {"kd": KD(), "ce": CrossEntropy()}, teacher_outputs=cache)
    fast_trainer(max_epochs=1).fit(module, train_dataloaders=_indexed_loader())
    # one lookup per training step (40 samples, batches of 8), each from the host-side hook
    assert callers == [("on_before_batch_transfer", "cpu")] * 5


def steps_logging(module, monkeypatch, name):
    """The global steps at which ``module`` logs ``name`` (a spy on ``module.log``), filled as it trains."""
    steps = []
    original = module.log

    def spy(logged, *args, **kwargs):
        if logged == name:
            steps.append(module.global_step)
        return original(logged, *args, **kwargs)

    monkeypatch.setattr(module, "log", spy)
    return steps


def test_terms_are_logged_on_the_loggers_steps_only(make_cnn, fast_trainer, data, tmp_path, monkeypatch):
    import csv

    from lightning.pytorch.loggers import CSVLogger

    module = DistillationModule(make_cnn(), make_cnn(), {"kd": KD(), "ce": CrossEntropy()})
    logged_steps = steps_logging(module, monkeypatch, "train/loss/kd")
    logger = CSVLogger(tmp_path, name="logs", version="")
    loader = DataLoader(TensorDataset(*data), batch_size=8)  # 6 steps
    fit(module, fast_trainer(logger=logger, log_every_n_steps=2), loader)
    rows = list(csv.DictReader(open(tmp_path / "logs" / "metrics.csv")))
    written = [int(r["step"]) for r in rows if r.get("train/loss/kd")]
    # Lightning writes steps 1, 3, 5 (every second one); the terms are logged on exactly those
    assert written == [int(r["step"]) for r in rows if r.get("train/loss")] == [1, 3, 5]
    assert logged_steps == written


def test_terms_follow_the_loggers_steps_under_gradient_accumulation(make_cnn, fast_trainer, data, tmp_path, monkeypatch):
    import csv

    from lightning.pytorch.loggers import CSVLogger

    module = DistillationModule(make_cnn(), make_cnn(), {"kd": KD(), "ce": CrossEntropy()})
    logged_steps = steps_logging(module, monkeypatch, "train/loss/kd")
    logger = CSVLogger(tmp_path, name="logs", version="")
    loader = DataLoader(TensorDataset(*data), batch_size=4)  # 12 micro-batches, 6 optimizer steps
    fit(module, fast_trainer(logger=logger, log_every_n_steps=2, accumulate_grad_batches=2), loader)
    rows = list(csv.DictReader(open(tmp_path / "logs" / "metrics.csv")))
    written = [int(r["step"]) for r in rows if r.get("train/loss/kd")]
    # the loggers write the total at optimizer steps 1, 3, 5; the terms are logged on the micro-batches of those steps
    assert written == [int(r["step"]) for r in rows if r.get("train/loss")] == [1, 3, 5]
    assert sorted(set(logged_steps)) == [1, 3, 5]


def test_terms_are_also_logged_on_the_epochs_last_step(make_cnn, fast_trainer, data, monkeypatch):
    module = DistillationModule(make_cnn(), make_cnn(), {"kd": KD(), "ce": CrossEntropy()})
    logged_steps = steps_logging(module, monkeypatch, "train/loss/ce")
    loader = DataLoader(TensorDataset(*data), batch_size=16)  # 3 steps an epoch
    fit(module, fast_trainer(max_epochs=2, log_every_n_steps=4), loader)
    assert logged_steps == [2, 3, 5]  # the ends of epochs 0 and 1, and step 3 (the 4th)


def test_non_finite_loss_under_a_trainer_with_a_deferred_check(make_cnn, fast_trainer, data):
    from distill.checks.non_finite import NonFiniteLossGuard

    module = DistillationModule(make_cnn(), make_cnn(), {"kd": KD(), "ce": CrossEntropy()})
    module._non_finite = NonFiniteLossGuard(defer=True)  # as on an accelerator
    x, y = data[0].clone(), data[1]
    x[8, 0, 0, 0] = float("nan")  # in the second batch (no shuffling)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    # recorded on step 1, read back at the next logging step (step 3 with log_every_n_steps=4)
    with pytest.raises(DistillError, match=r"kd, ce became non-finite at step 1 \(epoch 0\)"):
        fit(module, fast_trainer(log_every_n_steps=4), loader)


def teacher_writer():
    """A callback with a bug: it adds to one of the teacher's weights during training."""
    import lightning as L

    class WritesTheTeacher(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            with torch.no_grad():
                next(pl_module.teacher.parameters()).add_(1.0)

    return WritesTheTeacher()


@pytest.mark.parametrize("precision", ["32-true", "bf16-true"])
def test_a_teacher_written_during_training_fails_the_fit(make_cnn, fast_trainer, data, precision):
    module = DistillationModule(make_cnn(), make_cnn(), {"kd": KD()})
    trainer = fast_trainer(max_steps=1, precision=precision, callbacks=[teacher_writer()])
    with pytest.raises(RuntimeError, match="the teacher's weights changed during training"):
        trainer.fit(module, train_dataloaders=DataLoader(TensorDataset(*data), batch_size=8))


def test_under_bf16_true_the_cast_teacher_is_checked_as_it_ran(make_cnn, fast_trainer, data):
    """precision=bf16-true casts the whole module, the teacher too: the hash taken at the start of training is the
    bfloat16 teacher's, and the fit ends without a false 'weights changed' (it raised one before)."""
    from distill.models import weights_sha256

    teacher = make_cnn()
    given = weights_sha256(teacher)
    module = DistillationModule(make_cnn(), teacher, {"kd": KD()})
    fast_trainer(max_steps=2, precision="bf16-true").fit(module, DataLoader(TensorDataset(*data), batch_size=8))
    assert {p.dtype for p in module.teacher.parameters()} == {torch.bfloat16}
    assert module.teacher_sha256 == given  # the teacher as it was handed over
    assert module.teacher_sha256_as_run == weights_sha256(module.teacher) != given  # as it ran: the bfloat16 cast
    # in full precision nothing is cast: the hash as run is the hash as given, not taken a second time
    module = DistillationModule(make_cnn(), make_cnn(), {"kd": KD()})
    fast_trainer(max_steps=1).fit(module, DataLoader(TensorDataset(*data), batch_size=8))
    assert module.teacher_sha256_as_run == module.teacher_sha256
