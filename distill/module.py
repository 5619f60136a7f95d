"""The LightningModule that distils a frozen teacher into a trainable student."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric

from distill.batch import Batch, forward_logits, forward_logits_checked, split_batch
from distill.errors import DistillError
from distill.features import FeatureCapture
from distill.losses.base import LossTerm, StepOutputs
from distill.models.casting import CastInputs
from distill.models.fingerprint import weights_sha256
from distill.optim import OptimizerFactory, SchedulerFactory, configure_optimizers
from distill.rng import rng_states, set_rng_states
from distill.teachers.ensemble import TeacherEnsemble
from distill.teachers.output_cache import TeacherOutputCache


class DistillationModule(L.LightningModule):
    """Trains ``student`` to match a frozen ``teacher`` under a sum of weighted loss terms.

    Args:
        student: the model to train (any ``nn.Module``).
        teacher: the model to learn from. It is frozen here whatever state it
            arrives in: eval mode, ``requires_grad=False``, run under
            ``torch.no_grad()``, kept out of the optimizer and out of checkpoints.
            A list or mapping of models is averaged by a
            :class:`~distill.teachers.TeacherEnsemble` (logits; build one yourself for
            averaged soft targets or one output per teacher).
        loss: a mapping of name to :class:`~distill.losses.LossTerm`, or one term.
            The total loss is ``sum(term.weight * term(outputs))``.
        optimizer: a callable taking the parameters to train (e.g.
            ``functools.partial(torch.optim.SGD, lr=0.05)``); SGD with momentum by default.
        lr_scheduler: optional callable taking the optimizer; stepped once per epoch.
        class_dim: the class dimension of the outputs (1 as in ``F.cross_entropy``).
        teacher_source: where the teacher came from (a path, a weights name, ...),
            recorded in checkpoints next to the hash of the teacher's weights.
        log_grad_norms: a diagnostic: log the norm of each weighted term's gradient on the
            student's parameters (``train/grad_norm/<name>``), to see which term dominates or
            explodes. Costs one extra backward pass per term and step.
        teacher_outputs: a :class:`~distill.teachers.TeacherOutputCache` of the teacher's
            outputs on the training set; training steps then read them by sample index
            (the batches must carry indices) instead of running the teacher.
        teacher_dtype: keep the teacher's weights in this dtype (``torch.bfloat16`` or
            ``torch.float16``) to halve its memory; its inputs are cast to it and its
            outputs back to float32.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module | Mapping[str, nn.Module] | list[nn.Module],
        loss: Mapping[str, LossTerm] | LossTerm,
        optimizer: OptimizerFactory | None = None,
        lr_scheduler: SchedulerFactory | None = None,
        class_dim: int = 1,
        teacher_source: str | None = None,
        log_grad_norms: bool = False,
        teacher_outputs: TeacherOutputCache | None = None,
        teacher_dtype: torch.dtype | str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(teacher, (Mapping, list, tuple)):
            teacher = TeacherEnsemble(teacher)
        self.teacher_dtype = _dtype(teacher_dtype)
        if self.teacher_dtype is not None:
            teacher.to(self.teacher_dtype)
        self.student = student
        self.loss_terms = nn.ModuleDict(_as_term_dict(loss))
        # Kept outside the module tree on purpose: the teacher's parameters never
        # reach the optimizer, the checkpoint or DDP's gradient sync.
        self.__dict__["teacher"] = _freeze(teacher)
        self.teacher_sha256 = weights_sha256(teacher)
        self.teacher_source = teacher_source
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.class_dim = class_dim
        self.log_grad_norms = log_grad_norms
        self.teacher_outputs = teacher_outputs
        self.needs_teacher = any(term.needs_teacher for term in self.loss_terms.values())
        terms = list(self.loss_terms.values())
        # hooks are registered once, here, on exactly the layers the terms read
        self._student_capture = _capture(student, [l for t in terms for l in t.student_layers], "student")
        self._teacher_capture = _capture(teacher, [l for t in terms for l in t.teacher_layers], "teacher")
        self._built = not any(term.needs_build for term in terms)
        self.save_hyperparameters(
            {
                "loss": {name: repr(term) for name, term in self.loss_terms.items()},
                "teacher_source": teacher_source,
                "class_dim": class_dim,
            }
        )
        self._outputs_checked = False
        self._teacher_acc_logged = False
        for stage in ("val", "test"):
            for metric in ("acc", "teacher_acc", "agreement"):
                setattr(self, f"{stage}_{metric}", MeanMetric())

    # -- the teacher follows the module across devices and dtypes ------------
    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> DistillationModule:
        super()._apply(fn, *args, **kwargs)
        self.teacher._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True) -> DistillationModule:
        super().train(mode)
        self.teacher.eval()
        return self

    # -- forward ---------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The student's forward pass: the distilled model is the student."""
        return self.student(*args, **kwargs)

    def _run_models(self, batch: Any, with_teacher: bool, from_cache: bool = False) -> StepOutputs:
        for capture in (self._student_capture, self._teacher_capture):
            if capture is not None:
                capture.attach()  # after teardown, when used again by hand
        parts = split_batch(batch)
        outputs = StepOutputs(
            student=self._forward(self.student, parts, "student"), labels=parts.labels, index=parts.index
        )
        if self._student_capture:
            outputs.student_features = self._student_capture.collect()
        if with_teacher and from_cache and self.teacher_outputs is not None:
            self._read_cached_teacher(outputs)
        elif with_teacher:
            with torch.no_grad():
                outputs.teacher = self._forward(self.teacher, parts, "teacher")
            if self._teacher_capture:
                outputs.teacher_features = self._teacher_capture.collect()
        if not self._outputs_checked:
            self._check_outputs(outputs, parts)
            self._outputs_checked = True
        return outputs

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # cached teacher rows are looked up here, while the sample indices are still on the host,
        # so that a GPU step does not wait for its indices to come back (no host sync per step)
        self._cached_rows = None
        if self.teacher_outputs is not None and self.training:
            index = split_batch(batch).index
            if index is not None:
                self._cached_rows = self.teacher_outputs.read(index)
        return batch

    def _read_cached_teacher(self, outputs: StepOutputs) -> None:
        if outputs.index is None:
            raise DistillError(
                "training with a teacher-output cache needs sample indices in each training batch; "
                "build the data module with with_index=True"
            )
        rows, self._cached_rows = getattr(self, "_cached_rows", None), None
        logits, features = rows if rows is not None else self.teacher_outputs.read(outputs.index)
        device = outputs.student.device
        outputs.teacher = logits.to(device, non_blocking=True)
        outputs.teacher_features = {k: v.to(device, non_blocking=True) for k, v in features.items()}

    @property
    def teacher_as_run(self) -> nn.Module:
        """The teacher as the module calls it: with inputs cast to ``teacher_dtype`` when one is set."""
        return self.teacher if self.teacher_dtype is None else CastInputs(self.teacher, self.teacher_dtype)

    def _forward(self, model: nn.Module, parts: Batch, role: str) -> Tensor:
        if role == "teacher" and self.teacher_dtype is not None:
            model = CastInputs(model, self.teacher_dtype)
        logits = forward_logits(model, parts) if self._outputs_checked else forward_logits_checked(model, parts, role)
        return logits.float() if model is not self.teacher and role == "teacher" else logits

    def _check_outputs(self, outputs: StepOutputs, parts: Batch) -> None:
        """Catch model-pair and data mistakes on the first batch, with messages that name them."""
        student, teacher = outputs.student, outputs.teacher
        compares = [n for n, t in self.loss_terms.items() if t.compares_outputs]
        if teacher is not None and student.shape != teacher.shape and compares:
            raise DistillError(
                f"student output shape {tuple(student.shape)} does not match teacher output shape "
                f"{tuple(teacher.shape)} (needed by loss term(s) {', '.join(compares)}); "
                "build both models with the same number of classes"
            )
        if teacher is not None and _looks_like_probabilities(teacher, self.class_dim):
            warnings.warn(
                "the teacher's outputs are non-negative and sum to 1 along the class dimension: "
                "they look like probabilities, but distill expects logits (remove the final softmax)",
                stacklevel=2,
            )
        labels = outputs.labels
        if labels is not None and not labels.is_floating_point() and student.dim() >= 2:
            num_classes = student.shape[self.class_dim]
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= num_classes:
                raise DistillError(
                    f"labels range from {low} to {high} but the student predicts {num_classes} "
                    f"classes; build the models with num_classes={high + 1} or fix the labels"
                )

    # -- adapters and other parameters built from a first batch -----------------
    def build(self, batch: Any) -> None:
        """Let the terms that need it (adapters, embedding heads) build their parameters from ``batch``.

        Runs once, before the optimizer is made: :meth:`setup` calls it with the
        first training batch when training under a Trainer; call it yourself
        before making an optimizer by hand.
        """
        if self._built:
            return
        was_training = self.student.training
        self.student.eval()  # a dry run must not move BatchNorm statistics
        try:
            with torch.no_grad():
                outputs = self._run_models(batch, with_teacher=True)
        finally:
            self.student.train(was_training)
        for term in self.loss_terms.values():
            if term.needs_build:
                term.build(outputs)
        self._built = True

    def setup(self, stage: str) -> None:
        if stage == "fit" and not self._built:
            self.build(next(iter(_train_dataloader(self.trainer))))

    def teardown(self, stage: str) -> None:
        # the hooks go with the run: a teacher shared by many modules must not collect them
        for capture in (self._student_capture, self._teacher_capture):
            if capture is not None:
                capture.remove()

    # -- loss ------------------------------------------------------------------
    def _loss_terms(self, outputs: StepOutputs, skip_unlabeled: bool) -> dict[str, Tensor]:
        values = {}
        for name, term in self.loss_terms.items():
            if term.needs_labels and outputs.labels is None:
                if skip_unlabeled:
                    continue
                raise DistillError(
                    f"loss term '{name}' ({type(term).__name__}) needs labels, but the batch has none; "
                    f"remove it (e.g. ~loss.{name}) or give labelled data"
                )
            try:
                values[name] = term(outputs)
            except DistillError:
                raise
            except ValueError as error:  # the functional losses' input checks
                raise DistillError(f"loss term '{name}' ({type(term).__name__}): {error}") from error
        return values

    def _total(self, values: Mapping[str, Tensor]) -> Tensor:
        epoch = self.current_epoch
        return sum(self.loss_terms[name].weight_at(epoch) * value for name, value in values.items())

    # -- steps -------------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        outputs = self._run_models(batch, with_teacher=self.needs_teacher, from_cache=True)
        values = self._loss_terms(outputs, skip_unlabeled=False)
        total = self._total(values)
        if not torch.isfinite(total.detach()):
            bad = [n for n, v in values.items() if not torch.isfinite(v.detach())] or ["total"]
            raise DistillError(
                f"loss term(s) {', '.join(bad)} became non-finite at step {self.global_step} "
                f"(epoch {self.current_epoch}); lower the learning rate, check the inputs, "
                "or clip gradients (trainer.gradient_clip_val=1.0)"
            )
        batch_size = len(outputs.student)
        if self.log_grad_norms:
            self._log_term_grad_norms(values, batch_size)
        self.log("train/loss", total, prog_bar=True, batch_size=batch_size)
        for name, value in values.items():
            self.log(f"train/loss/{name}", value, prog_bar=len(values) > 1, batch_size=batch_size)
        return total

    def _log_term_grad_norms(self, values: Mapping[str, Tensor], batch_size: int) -> None:
        params = [p for p in self.student.parameters() if p.requires_grad]
        for name, value in values.items():
            if not value.requires_grad:
                continue
            weighted = self.loss_terms[name].weight_at(self.current_epoch) * value
            grads = torch.autograd.grad(weighted, params, retain_graph=True, allow_unused=True)
            norm = torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None))
            self.log(f"train/grad_norm/{name}", norm, batch_size=batch_size)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: Any, stage: str) -> None:
        outputs = self._run_models(batch, with_teacher=True)
        values = self._loss_terms(outputs, skip_unlabeled=True)
        batch_size = len(outputs.student)
        # epoch means over all ranks under DDP (the metric objects below sync themselves)
        if values:
            self.log(f"{stage}/loss", self._total(values), batch_size=batch_size, sync_dist=True)
        for name, value in values.items():
            self.log(f"{stage}/loss/{name}", value, batch_size=batch_size, sync_dist=True)

        student_pred = outputs.student.argmax(self.class_dim)
        teacher_pred = outputs.teacher.argmax(self.class_dim)
        if student_pred.shape == teacher_pred.shape:
            agreement = getattr(self, f"{stage}_agreement")
            agreement.update((student_pred == teacher_pred).float())
            self.log(f"{stage}/agreement", agreement, batch_size=batch_size)
        labels = outputs.labels
        if labels is not None and labels.shape == student_pred.shape and not labels.is_floating_point():
            acc = getattr(self, f"{stage}_acc")
            acc.update((student_pred == labels).float())
            self.log(f"{stage}/acc", acc, prog_bar=stage == "val", batch_size=batch_size)
            # the teacher's accuracy only checks that the right teacher was loaded: log it once
            if stage == "test" or not self._teacher_acc_logged:
                teacher_acc = getattr(self, f"{stage}_teacher_acc")
                teacher_acc.update((teacher_pred == labels).float())
                self.log(f"{stage}/teacher_acc", teacher_acc, batch_size=batch_size)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._teacher_acc_logged = True

    # -- teacher integrity -------------------------------------------------------
    def on_train_start(self) -> None:
        self.teacher.eval()

    def on_train_epoch_start(self) -> None:
        for term in self.loss_terms.values():
            term.on_epoch_start(self.current_epoch)

    def on_fit_end(self) -> None:
        if weights_sha256(self.teacher) != self.teacher_sha256:
            raise RuntimeError(
                "the teacher's weights changed during training; this is a bug in a loss term "
                "or callback that writes to the teacher"
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["distill"] = {
            "teacher_source": self.teacher_source,
            "teacher_sha256": self.teacher_sha256,
            # so a resumed run draws the same shuffles (and dropout masks) as an uninterrupted one
            "rng": rng_states(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("distill", {}).get("rng")
        if states is not None and self._trainer is not None and self.trainer.state.fn == "fit":
            set_rng_states(states)

    # -- optimisation --------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        # self.parameters() holds the student and any adapters of the loss terms, never the teacher
        return configure_optimizers(self, self.optimizer_factory, self.lr_scheduler_factory)


def _as_term_dict(loss: Mapping[str, LossTerm] | LossTerm) -> dict[str, LossTerm]:
    if isinstance(loss, LossTerm):
        return {type(loss).__name__.lower(): loss}
    if not isinstance(loss, Mapping) or not loss:
        raise DistillError(
            f"loss must be a LossTerm or a non-empty mapping of name to LossTerm, got {type(loss).__name__}"
        )
    terms = {}
    for name, term in loss.items():
        if term is None:  # a term switched off in the config (loss.ce=null)
            continue
        if not isinstance(term, LossTerm):
            raise DistillError(
                f"loss term '{name}' is a {type(term).__name__}, not a distill.losses.LossTerm"
            )
        terms[str(name)] = term
    if not terms:
        raise DistillError("every loss term is switched off; keep at least one")
    return terms


def _capture(model: nn.Module, layers: list[str], role: str) -> FeatureCapture | None:
    return FeatureCapture(model, layers, role) if layers else None


def _train_dataloader(trainer: L.Trainer) -> Any:
    if trainer.datamodule is not None:
        return trainer.datamodule.train_dataloader()
    return trainer.fit_loop._data_source.dataloader()


def _freeze(teacher: nn.Module) -> nn.Module:
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher


def _dtype(value: torch.dtype | str | None) -> torch.dtype | None:
    if value is None or isinstance(value, torch.dtype):
        return value
    choices = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
               "float32": torch.float32}
    if str(value) not in choices:
        raise DistillError(f"unknown teacher dtype '{value}'; choose bfloat16, float16 or float32")
    return choices[str(value)]


def _looks_like_probabilities(outputs: Tensor, class_dim: int) -> bool:
    if outputs.dim() < 2 or outputs.shape[class_dim] < 2:
        return False
    outputs = outputs.detach().float()
    sums = outputs.sum(class_dim)
    return bool((outputs >= 0).all() and torch.allclose(sums, torch.ones_like(sums), atol=1e-3))
