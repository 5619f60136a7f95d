"""The LightningModule that distils a frozen teacher into a trainable student.

Over 300 lines for a reason: it is one class of Lightning hooks (freezing, steps, checkpoints,
RNG persistence, hook handling) that belong together; the first-batch checks, the teacher's
outputs (:mod:`distill.teachers.live_teacher`) and the diagnostics live in their own files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric

from distill.augment.batch_views import CACHE_WITH_BATCH_AUGMENT
from distill.batch import forward_logits, forward_logits_checked, split_batch
from distill.diagnostics.gradient_norms import GradientNorms
from distill.errors import DistillError
from distill.features import FeatureCapture
from distill.checks.first_batch import check_first_batch
from distill.lm.step_token_mean import StepTokenMean
from distill.lightning_warnings import ignore_lightning_noise
from distill.lm.on_policy import OnPolicy
from distill.lm.predictions import is_token_output, next_token_predictions
from distill.losses.base import LossTerm, StepOutputs
from distill.models.fingerprint import dtypes_of, weights_sha256
from distill.models.gradient_checkpointing import disable_gradient_checkpointing
from distill.checks.non_finite import NonFiniteLossGuard
from distill.partial_labels import outputs_for_term
from distill.optim import OptimizerFactory, SchedulerFactory, configure_optimizers
from distill.checks.model_pair import check_pair, check_teacher_outputs_finite
from distill.rng import rng_states, set_rng_states
from distill.teachers.ensemble import TeacherEnsemble
from distill.teachers.live_teacher import LiveTeacher, TeacherOnBatch
from distill.teachers.output_cache import TeacherOutputCache
from distill.teachers.sharded import is_deepspeed_engine, shard_for_forward, teacher_weights_sha256

ignore_lightning_noise()  # the Python API is as quiet as the commands (distill.lightning_warnings)


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
            explodes. Costs one extra backward pass per term and step. The module hands
            Lightning a :class:`~distill.diagnostics.GradientNorms` callback for it.
        teacher_outputs: a :class:`~distill.teachers.TeacherOutputCache` of the teacher's
            outputs on the training set; training steps then read them by sample index
            (the batches must carry indices) instead of running the teacher.
        teacher_dtype: keep the teacher's weights in this dtype (``torch.bfloat16`` or
            ``torch.float16``) to halve its memory; its inputs are cast to it and its
            outputs back to float32.
        batch_augment: a :class:`~distill.augment.BatchAugment` applied to each training batch
            before either model runs, so the teacher's targets are computed on the student's exact
            view (mixup, cutmix, crops; see :mod:`distill.augment`).
        on_policy: a :class:`~distill.lm.on_policy.OnPolicy` for causal LMs (GKD): with its probability
            per sample, a training sample's completion is the student's own, generated before both
            models score the batch; the teacher-forced step otherwise.
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
        batch_augment: Callable[[Any], Any] | None = None,
        on_policy: OnPolicy | None = None,
    ) -> None:
        super().__init__()
        check_pair(student, teacher)
        if batch_augment is not None and teacher_outputs is not None:
            raise DistillError(CACHE_WITH_BATCH_AUGMENT)
        if on_policy is not None and teacher_outputs is not None:
            raise DistillError(
                "on-policy distillation has the teacher score the student's own completions, which no teacher-output "
                "cache holds; set teacher.cache=false"
            )
        self.batch_augment = batch_augment
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
        #: the hash of the teacher as training runs it: the same, unless the Trainer's precision cast it (bf16-true,
        #: DeepSpeed's half precision); on_train_start takes it, on_fit_end checks the teacher against it
        self.teacher_sha256_as_run = self.teacher_sha256
        self._teacher_dtypes = dtypes_of(teacher)
        self.teacher_source = teacher_source
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.class_dim = class_dim
        self.log_grad_norms = log_grad_norms
        self.teacher_outputs = teacher_outputs
        self.needs_teacher = any(term.needs_teacher for term in self.loss_terms.values())
        self.on_policy = on_policy
        if on_policy is not None:
            on_policy.check_terms(self.loss_terms)
        terms = list(self.loss_terms.values())
        # hooks are registered once, here, on exactly the layers the terms read
        self._student_capture = _capture(student, [l for t in terms for l in t.student_layers], "student")
        self._teacher_capture = _capture(teacher, [l for t in terms for l in t.teacher_layers], "teacher")
        #: the teacher as evaluation runs it, and where training steps get the teacher's outputs:
        #: the same live teacher, or the teacher-output cache (both answer ``outputs(parts, ...)``)
        self.live_teacher = LiveTeacher(teacher, self._teacher_capture, self.teacher_dtype)
        self.training_teacher: TeacherOnBatch = teacher_outputs if teacher_outputs is not None else self.live_teacher
        #: set by a diagnostic callback: keep each training step's outputs and term values in ``last_step``
        self.record_steps = False
        self.last_step: tuple[StepOutputs, dict[str, Tensor]] | None = None
        self._token_mean = StepTokenMean()  # the token terms' divisor over a step's micro-batches and processes
        self._built = not any(term.needs_build for term in terms)
        self.save_hyperparameters(
            {
                "loss": {name: repr(term) for name, term in self.loss_terms.items()},
                "teacher_source": teacher_source,
                "class_dim": class_dim,
            }
        )
        self._checked: set[str] = set()  # "train" and "eval": the first batch of each is checked
        self._teacher_acc_logged = False
        self._updated_metrics: dict[str, set[str]] = {}  # by stage: the metric objects updated this epoch
        self._non_finite = NonFiniteLossGuard()
        for stage in ("val", "test"):
            for metric in ("acc", "teacher_acc", "agreement"):
                setattr(self, f"{stage}_{metric}", MeanMetric())

    # -- the teacher follows the module across devices and dtypes ------------
    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> DistillationModule:
        super()._apply(fn, *args, **kwargs)
        if not is_deepspeed_engine(self.teacher):  # a DeepSpeed engine placed and cast the teacher it partitions
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
        self.attach_hooks()  # after teardown, when used again by hand
        stage = "train" if from_cache else "eval"
        first_batch = stage not in self._checked
        parts = split_batch(batch)
        model_outputs = forward_logits_checked(self.student, parts, "student") if first_batch else forward_logits(
            self.student, parts
        )
        outputs = StepOutputs(student=model_outputs, labels=parts.labels, index=parts.index, alignment=parts.alignment)
        if self._student_capture:
            outputs.student_features = self._student_capture.collect()
        if with_teacher:
            teacher = self.training_teacher if from_cache else self.live_teacher
            outputs.teacher, outputs.teacher_features = teacher.outputs(parts, outputs.student.device, first_batch)
        if first_batch:
            # the first training batch too, not only Lightning's sanity-check validation batch
            check_first_batch(outputs, self.loss_terms, self.class_dim)
            self._checked.add(stage)
        return outputs

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # cached teacher rows are looked up here, while the sample indices are still on the host,
        # so that a GPU step does not wait for its indices to come back (no host sync per step)
        if self.training and self.teacher_outputs is not None:
            self.training_teacher.prefetch(split_batch(batch).index)
        return batch

    @property
    def teacher_as_run(self) -> nn.Module:
        """The teacher as the module calls it: with inputs cast to ``teacher_dtype`` when one is set."""
        return self.live_teacher.as_run

    # -- the hooks that capture the layers the loss terms read ---------------------
    def attach_hooks(self) -> None:
        """Register the forward hooks on the student's and the teacher's layers that the terms read (idempotent)."""
        for capture in (self._student_capture, self._teacher_capture):
            if capture is not None:
                capture.attach()

    def remove_hooks(self) -> None:
        """Take the forward hooks off both models (a teacher shared by many modules must not collect them)."""
        for capture in (self._student_capture, self._teacher_capture):
            if capture is not None:
                capture.remove()

    def captured_features(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The student's and the teacher's captured layer outputs of the latest forward pass, handed over and forgotten."""
        student = self._student_capture.collect() if self._student_capture else {}
        teacher = self._teacher_capture.collect() if self._teacher_capture else {}
        return student, teacher

    def discard_captured_features(self) -> None:
        """Forget the layer outputs the hooks kept from the latest forward pass (frees their memory)."""
        for capture in (self._student_capture, self._teacher_capture):
            if capture is not None:
                capture.clear()

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
        # under FSDP the teacher is sharded too, for forward passes only (distill.teachers.sharded)
        sharded = shard_for_forward(self.teacher, self.trainer.strategy)
        if sharded is not self.teacher:
            self.__dict__["teacher"] = self.live_teacher.model = sharded

    def teardown(self, stage: str) -> None:
        self.remove_hooks()  # the hooks go with the run

    def configure_callbacks(self) -> list[L.Callback]:
        # the diagnostic asked for in the constructor; Lightning adds it to the Trainer's callbacks
        return [GradientNorms()] if self.log_grad_norms else []

    # -- loss ------------------------------------------------------------------
    def _loss_terms(self, outputs: StepOutputs, skip_unlabeled: bool, mixed_labels: bool = False) -> dict[str, Tensor]:
        values = {}
        for name, term in self.loss_terms.items():
            if term.needs_labels and outputs.labels is None:
                if skip_unlabeled:
                    continue
                raise DistillError(
                    f"loss term '{name}' ({type(term).__name__}) needs labels, but the batch has none; "
                    f"remove it (e.g. ~loss.{name}) or give labelled data"
                )
            term_outputs = outputs_for_term(term, name, outputs, mixed_labels)  # partly-labelled, mixed
            if term_outputs is None:
                continue
            try:
                values[name] = term(term_outputs)
            except DistillError:
                raise
            except ValueError as error:  # the functional losses' input checks (shapes; settings are checked at build)
                raise DistillError(f"loss term '{name}' ({type(term).__name__}): {error}") from error
        return values

    def _total(self, values: Mapping[str, Tensor]) -> Tensor:
        epoch = self.current_epoch
        return sum(self.loss_terms[name].weight_at(epoch) * value for name, value in values.items())

    # -- steps -------------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        if self.batch_augment is not None:
            batch = self.batch_augment(batch)
        if self.on_policy is not None:  # GKD: some samples' completions become the student's own (distill.lm.on_policy)
            batch = self.on_policy(batch, self.student, self.global_step, self.global_rank)
        outputs = self._run_models(batch, with_teacher=self.needs_teacher, from_cache=True)
        # one per-token mean over the step's global batch (DDP's processes, accumulated micro-batches)
        to_own_mean = self._token_mean.before_loss(outputs, self.loss_terms, self._trainer)
        values = self._loss_terms(outputs, skip_unlabeled=False, mixed_labels=_mixes_labels(self.batch_augment))
        # every term sat this step out (label terms only, a batch with no labelled sample): exactly 0, on the graph
        total = self._total(values) if values else outputs.student.float().sum() * 0.0
        # on an accelerator the check reads back to the host only at logging steps (see NonFiniteLossGuard)
        try:
            self._non_finite.update(values, total, self.global_step, self.current_epoch)
        except DistillError:
            check_teacher_outputs_finite(outputs, self.global_step)  # names the teacher when it is the cause
            raise
        batch_size = len(outputs.student)
        if self.record_steps:  # for the gradient diagnostics, which run before the backward pass
            self.last_step = (outputs, values)
        shown = values if to_own_mean is None else {n: v.detach() * to_own_mean for n, v in values.items()}
        shown_total = total if to_own_mean is None else self._total(shown)  # this micro-batch's own per-token means
        # every step's total and terms, still on the device, for callbacks that average over every step (the epoch line)
        self.step_losses = {"train/loss": shown_total.detach(), **{f"train/loss/{n}": v.detach() for n, v in shown.items()}}
        self.log("train/loss", shown_total, prog_bar=True, batch_size=batch_size)
        # each self.log costs Lightning's bookkeeping; the loggers write the terms only every
        # log_every_n_steps, so they are logged on those steps (and the epoch's last, for the
        # epoch-end metrics) alone
        if self._is_logging_step():
            self._non_finite.raise_if_seen()
            # under DDP a token term's value is this rank's summed loss / (global loss tokens / world size):
            # rank 0's share, whose mean over the ranks is the global per-token mean (one process: its own mean)
            for name, value in shown.items():
                self.log(f"train/loss/{name}", value, prog_bar=len(values) > 1, batch_size=batch_size)
        return total

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self._token_mean.rescale(optimizer, self._trainer)  # accumulated micro-batches: one per-token mean

    def _is_logging_step(self) -> bool:
        """Whether the loggers write this step's values (Lightning's test, every ``log_every_n_steps``) or the epoch ends."""
        trainer = self._trainer
        if trainer is None:
            return True
        if trainer.fast_dev_run or trainer.is_last_batch:
            return True
        every = trainer.log_every_n_steps
        # Lightning counts the optimizer steps taken (global_step) + 1, as its logger connector does
        return every > 0 and (trainer.global_step + 1) % every == 0

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

        # the metric objects are updated per batch and logged once, at the epoch's end (one
        # self.log each instead of one per batch); they sync over DDP ranks themselves
        labels = outputs.labels
        if outputs.alignment is not None:  # another tokenizer: the teacher's tokens are not the student's
            student_pred, teacher_pred, labels = _student_only_predictions(outputs.student, labels)
        elif is_token_output(outputs.student, labels):  # a causal LM: next-token predictions where loss is taken
            student_pred, teacher_pred, labels = next_token_predictions(outputs.student, outputs.teacher, labels)
        else:
            student_pred, teacher_pred = outputs.student.argmax(self.class_dim), outputs.teacher.argmax(self.class_dim)
        updated = self._updated_metrics.setdefault(stage, set())
        if teacher_pred is not None and student_pred.shape == teacher_pred.shape:
            getattr(self, f"{stage}_agreement").update((student_pred == teacher_pred).float())
            updated.add("agreement")
        if labels is not None and labels.shape == student_pred.shape and not labels.is_floating_point():
            getattr(self, f"{stage}_acc").update((student_pred == labels).float())
            updated.add("acc")
            # the teacher's accuracy only checks that the right teacher was loaded: log it once
            if teacher_pred is not None and (stage == "test" or not self._teacher_acc_logged):
                getattr(self, f"{stage}_teacher_acc").update((teacher_pred == labels).float())
                updated.add("teacher_acc")

    def _log_epoch_metrics(self, stage: str) -> None:
        for name in sorted(self._updated_metrics.pop(stage, ())):
            self.log(f"{stage}/{name}", getattr(self, f"{stage}_{name}"), prog_bar=stage == "val" and name == "acc")

    def on_validation_start(self) -> None:
        self._non_finite.raise_if_seen()  # before a checkpoint can keep non-finite weights

    def on_train_end(self) -> None:
        self._non_finite.raise_if_seen()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")
        if not self.trainer.sanity_checking:
            self._teacher_acc_logged = True

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    # -- teacher integrity -------------------------------------------------------
    def on_train_start(self) -> None:
        self.teacher.eval()
        # the strategy and the precision have placed (and perhaps cast or partitioned) the teacher by now
        if is_deepspeed_engine(self.teacher) or dtypes_of(self.teacher) != self._teacher_dtypes:
            self.teacher_sha256_as_run = teacher_weights_sha256(self.teacher)

    def on_train_epoch_start(self) -> None:
        for term in self.loss_terms.values():
            term.on_epoch_start(self.current_epoch)

    def teacher_cast_hash(self) -> dict[str, str]:
        """For a run's summary: the teacher's hash as training ran it, when the precision cast it (else nothing)."""
        return {"sha256_as_run": self.teacher_sha256_as_run} if self.teacher_sha256_as_run != self.teacher_sha256 else {}

    def on_fit_end(self) -> None:
        if teacher_weights_sha256(self.teacher) != self.teacher_sha256_as_run:
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


def _student_only_predictions(student: Tensor, labels: Tensor | None) -> tuple[Tensor, None, Tensor | None]:
    """The student's next-token predictions and targets; none of the teacher's (another vocabulary: not comparable)."""
    predictions, _, targets = next_token_predictions(student, student, labels)
    return predictions, None, targets


def _mixes_labels(augment: Any) -> bool:
    return bool(getattr(augment, "mixes_labels", False))


def _capture(model: nn.Module, layers: list[str], role: str) -> FeatureCapture | None:
    return FeatureCapture(model, layers, role) if layers else None


def _train_dataloader(trainer: L.Trainer) -> Any:
    if trainer.datamodule is not None:
        return trainer.datamodule.train_dataloader()
    return trainer.fit_loop._data_source.dataloader()


def _freeze(teacher: nn.Module) -> nn.Module:
    teacher.eval()
    teacher.requires_grad_(False)
    return disable_gradient_checkpointing(teacher)  # only the student's blocks are ever recomputed


def _dtype(value: torch.dtype | str | None) -> torch.dtype | None:
    if value is None or isinstance(value, torch.dtype):
        return value
    choices = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
               "float32": torch.float32}
    if str(value) not in choices:
        raise DistillError(f"unknown teacher dtype '{value}'; choose bfloat16, float16 or float32")
    return choices[str(value)]
