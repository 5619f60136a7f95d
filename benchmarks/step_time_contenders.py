"""The contenders of ``step_time.py``: the same KD training step, run by different machinery.

Every contender trains ``student`` against a frozen ``teacher`` with
``0.9 * KD(T=4) + 0.1 * CE`` and the same optimizer (SGD with momentum 0.9 for the
torchvision pair, Adam for the small pair of ``small_pair.py``) on the same synthetic
data, in the same order, one epoch of ``warmup + steps`` batches. Each one
calls :meth:`StepClock.tick` once per step, right after the optimizer step,
so a timed interval holds everything one step costs: fetching the batch from
the ``DataLoader``, the forward and backward passes, the update, and whatever
the machinery does around them (hooks, logging, progress bar). Epoch-end work
(validation, checkpoints) happens after the last tick and is reported apart.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from small_pair import SIGNAL_LENGTH, SMALL_MODELS

KD_WEIGHT = 0.9
CE_WEIGHT = 0.1
TEMPERATURE = 4.0
LOG_EVERY_N_STEPS = 10  # the default trainer config's log_every_n_steps


@dataclasses.dataclass
class Settings:
    """What every contender trains on; the JSON carries it along."""

    teacher: str = "resnet50"
    student: str = "resnet18"
    num_classes: int = 10
    image_size: int = 32
    batch_size: int = 64
    warmup: int = 3
    steps: int = 20
    threads: int = 2
    seed: int = 0
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"  # or "adam" (lr, no momentum, weight_decay)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape: a 40-long signal for the small pair, else a 3-channel image."""
        if self.teacher in SMALL_MODELS or self.student in SMALL_MODELS:
            return (SIGNAL_LENGTH,)
        return (3, self.image_size, self.image_size)

    @property
    def num_samples(self) -> int:
        # one epoch covers exactly the warm-up and the timed steps
        return self.batch_size * (self.warmup + self.steps)


class StepClock:
    """Step-end timestamps and memory readings; the first ``warmup`` steps are left out of the result."""

    def __init__(self, warmup: int, born: float | None = None) -> None:
        if warmup < 1:
            raise ValueError(f"warmup must be at least 1 (the end of the last warm-up step starts the clock), got {warmup}")
        self.warmup = warmup
        self.born = time.perf_counter() if born is None else born  # the process's start, for setup_s
        self.started: float | None = None  # the epoch's first batch is about to be fetched
        self.ticks: list[float] = []
        self.rss_before_steps_mb = 0.0
        self.peak_rss_steps_mb = 0.0

    def start(self) -> None:
        self.started = time.perf_counter()

    def tick(self) -> None:
        self.ticks.append(time.perf_counter())
        if len(self.ticks) == self.warmup:
            self.rss_before_steps_mb = _current_rss_mb()
        self.peak_rss_steps_mb = _peak_rss_mb()

    def result(self, contender: str, settings: Settings, finished: float | None = None) -> dict[str, Any]:
        """Seconds per timed step (their mean), every step's time, warm-up, epoch end and memory."""
        finished = time.perf_counter() if finished is None else finished
        if len(self.ticks) != settings.warmup + settings.steps:
            raise RuntimeError(
                f"{contender}: {len(self.ticks)} steps ticked, expected {settings.warmup + settings.steps}"
            )
        timed = self.ticks[self.warmup - 1 :]
        step_seconds = [b - a for a, b in itertools.pairwise(timed)]
        return {
            "contender": contender,
            "seconds_per_step": (timed[-1] - timed[0]) / len(step_seconds),
            "step_seconds": step_seconds,
            "setup_s": (self.started or self.ticks[0]) - self.born,
            "warmup_s": self.ticks[self.warmup - 1] - (self.started or self.born),
            "epoch_end_s": finished - self.ticks[-1],
            "rss_before_steps_mb": self.rss_before_steps_mb,
            "peak_rss_steps_mb": self.peak_rss_steps_mb,
            "peak_rss_mb": _peak_rss_mb(),
        }


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


# -- the shared work ---------------------------------------------------------------
def make_data(settings: Settings) -> tuple[Tensor, Tensor]:
    """Random images and labels, the same for every contender."""
    generator = torch.Generator().manual_seed(settings.seed)
    x = torch.randn(settings.num_samples, *settings.input_shape, generator=generator)
    y = torch.randint(0, settings.num_classes, (settings.num_samples,), generator=generator)
    return x, y


def make_models(settings: Settings) -> tuple[nn.Module, nn.Module]:
    """``(teacher, student)``: the small pair's or torchvision's models with random weights, seeded."""
    torch.manual_seed(settings.seed)
    return make_model(settings.teacher, settings.num_classes), make_model(settings.student, settings.num_classes)


def make_model(name: str, num_classes: int) -> nn.Module:
    if name in SMALL_MODELS:
        return SMALL_MODELS[name](num_classes)
    return torchvision.models.get_model(name, num_classes=num_classes)


def make_optimizer(settings: Settings) -> functools.partial:
    if settings.optimizer == "adam":
        return functools.partial(torch.optim.Adam, lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.optimizer != "sgd":
        raise ValueError(f"unknown optimizer {settings.optimizer!r}; choose sgd or adam")
    return functools.partial(
        torch.optim.SGD, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
    )


def train_loader(settings: Settings, dataset: Any) -> DataLoader:
    """Shuffled batches in the same order for every contender (a seeded sampler)."""
    sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(settings.seed + 1))
    return DataLoader(dataset, batch_size=settings.batch_size, sampler=sampler, num_workers=0)


def hand_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor) -> Tensor:
    """``0.9 * T² * KL(softmax(t/T) || softmax(s/T)) + 0.1 * CE(s, y)``, batch-averaged, as distill's KD and CE."""
    log_q = F.log_softmax(student_logits.float() / TEMPERATURE, dim=1)
    log_p = F.log_softmax(teacher_logits.float() / TEMPERATURE, dim=1)
    kd = (log_p.exp() * (log_p - log_q)).sum(dim=1).mean() * TEMPERATURE**2
    return KD_WEIGHT * kd + CE_WEIGHT * F.cross_entropy(student_logits.float(), labels)


def _setup(settings: Settings) -> None:
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)


# -- plain PyTorch -----------------------------------------------------------------
def run_hand(settings: Settings, clock: StepClock, **_: Any) -> dict[str, Any]:
    """The practical limit: a bare loop, teacher in eval under inference mode."""
    _setup(settings)
    teacher, student = make_models(settings)
    teacher.eval().requires_grad_(False)
    student.train()
    optimizer = make_optimizer(settings)(student.parameters())
    loader = train_loader(settings, TensorDataset(*make_data(settings)))
    clock.start()
    for x, y in loader:
        with torch.inference_mode():
            teacher_logits = teacher(x)
        loss = hand_loss(student(x), teacher_logits.clone(), y)  # a clone leaves inference mode
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        clock.tick()
    return clock.result("hand", settings)


def run_student_only(settings: Settings, clock: StepClock, cache_dir: str | None = None, **_: Any) -> dict[str, Any]:
    """The limit with cached teacher outputs: the same loop, teacher logits read from memory."""
    _setup(settings)
    _, student = make_models(settings)
    student.train()
    optimizer = make_optimizer(settings)(student.parameters())
    x, y = make_data(settings)
    loader = train_loader(settings, TensorDataset(x, y, _teacher_logits(settings, cache_dir)))
    clock.start()
    for x, y, teacher_logits in loader:
        loss = hand_loss(student(x), teacher_logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        clock.tick()
    return clock.result("student_only", settings)


def _teacher_logits(settings: Settings, cache_dir: str | None) -> Tensor:
    """The teacher's logits on the training set, all in memory (as ``prepare_cache`` saved them)."""
    if cache_dir is None:  # run alone: compute them now, before the clock starts
        teacher, _ = make_models(settings)
        with torch.inference_mode():
            return torch.cat([teacher.eval()(x) for x in make_data(settings)[0].split(settings.batch_size)]).clone()
    # a plain .npy file, so that this contender imports neither distill nor Lightning
    return torch.from_numpy(np.load(Path(cache_dir) / PLAIN_LOGITS))


# -- distill -------------------------------------------------------------------------
PLAIN_LOGITS = "teacher_logits.npy"


def prepare_cache(settings: Settings, cache_dir: str, **_: Any) -> dict[str, Any]:
    """Build the teacher-output cache once, before the timed runs (they open it warm)."""
    _setup(settings)
    started = time.perf_counter()
    cache = open_cache(settings, cache_dir)
    np.save(Path(cache_dir) / PLAIN_LOGITS, np.asarray(cache.logits))
    return {"contender": "prepare_cache", "seconds": time.perf_counter() - started, "directory": str(cache.directory)}


def open_cache(settings: Settings, cache_dir: str) -> Any:
    from distill.data import TensorClassificationDataset
    from distill.teachers.output_cache import TeacherOutputCache

    teacher, _ = make_models(settings)
    data = TensorClassificationDataset(*make_data(settings), with_index=True)
    key = {"benchmark": "step_time", **dataclasses.asdict(settings)}
    for name in ("warmup", "steps", "threads"):  # the outputs do not depend on these ...
        key.pop(name)
    key["num_samples"] = settings.num_samples  # ... but on how many samples there are
    loader = DataLoader(data, batch_size=settings.batch_size, shuffle=False)
    return TeacherOutputCache.open_or_build(cache_dir, key, teacher, loader)


def run_distill(
    settings: Settings,
    clock: StepClock,
    cache_dir: str | None = None,
    cached: bool = False,
    channels_last: bool = False,
    compile: bool = False,
    precision: str = "32-true",
    name: str = "distill",
    **_: Any,
) -> dict[str, Any]:
    """DistillationModule under the Lightning Trainer, set up as the default run config sets it up."""
    from distill import DistillationModule
    from distill.data import TensorClassificationDataset
    from distill.losses import KD, CrossEntropy

    _setup(settings)
    teacher, student = make_models(settings)
    if channels_last:  # as run.py does for channels_last=true
        for model in (student, teacher):
            model.to(memory_format=torch.channels_last)
    if compile:  # as run.py does for compile=true
        student.compile()
    module = DistillationModule(
        student,
        teacher,
        loss={"kd": KD(temperature=TEMPERATURE, weight=KD_WEIGHT), "ce": CrossEntropy(weight=CE_WEIGHT)},
        optimizer=make_optimizer(settings),
        teacher_outputs=open_cache(settings, cache_dir) if cached else None,
    )
    x, y = make_data(settings)
    train = train_loader(settings, TensorClassificationDataset(x, y, with_index=cached))
    return fit_timed(module, train, settings, clock, name, precision)


def validation_loader(settings: Settings) -> DataLoader:
    """One validation batch, so that the best-checkpoint callback has its metric as in a real run."""
    generator = torch.Generator().manual_seed(settings.seed + 2)
    x = torch.randn(settings.batch_size, *settings.input_shape, generator=generator)
    y = torch.randint(0, settings.num_classes, (settings.batch_size,), generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=settings.batch_size)


def fit_timed(
    module: Any, train: DataLoader, settings: Settings, clock: StepClock, name: str, precision: str = "32-true"
) -> dict[str, Any]:
    """``trainer.fit`` for one epoch under the default run config's Trainer, ticking ``clock`` per step."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from distill.callbacks import CheckpointOnPreemption
    from distill.checkpoint_io import AtomicCheckpointIO

    class Clock(L.Callback):
        def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            clock.start()

        def on_train_batch_end(self, *args: Any) -> None:
            clock.tick()

    with tempfile.TemporaryDirectory(prefix="distill-bench-") as run_dir:
        checkpoints = Path(run_dir) / "checkpoints"
        # conf/config.yaml's callbacks and logger, conf/trainer/default.yaml's settings (one epoch)
        trainer = L.Trainer(
            max_epochs=1,
            accelerator="cpu",
            devices=1,
            precision=precision,
            log_every_n_steps=LOG_EVERY_N_STEPS,
            deterministic=False,
            enable_progress_bar=True,
            default_root_dir=run_dir,
            logger=CSVLogger(run_dir, name="logs", version=""),
            plugins=[AtomicCheckpointIO()],
            callbacks=[
                Clock(),
                ModelCheckpoint(
                    dirpath=checkpoints, filename="best", monitor="val/acc", mode="max",
                    save_top_k=1, enable_version_counter=False,
                ),
                ModelCheckpoint(dirpath=checkpoints, filename="last", save_top_k=1, enable_version_counter=False),
                CheckpointOnPreemption(checkpoints),
            ],
        )
        trainer.fit(module, train_dataloaders=train, val_dataloaders=validation_loader(settings))
        finished = time.perf_counter()
        saved = sorted(p.name for p in checkpoints.glob("*.ckpt"))
    result = clock.result(name, settings, finished)
    result["checkpoints"] = saved
    result["progress_bar"] = type(trainer.progress_bar_callback).__name__
    return result


# -- a minimal LightningModule --------------------------------------------------------
def run_minimal_lightning(settings: Settings, clock: StepClock, **_: Any) -> dict[str, Any]:
    """Lightning's floor: the hand loop's math in the smallest LightningModule, under distill's Trainer."""
    import lightning as L

    class MinimalKD(L.LightningModule):
        def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
            super().__init__()
            self.student = student
            self.__dict__["teacher"] = teacher.eval().requires_grad_(False)  # out of the optimizer and checkpoint

        def training_step(self, batch: Any, batch_idx: int) -> Tensor:
            x, y = batch
            with torch.inference_mode():
                teacher_logits = self.teacher(x)
            loss = hand_loss(self.student(x), teacher_logits.clone(), y)
            self.log("train/loss", loss, prog_bar=True)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("val/acc", (self.student(x).argmax(1) == y).float().mean(), prog_bar=True)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return make_optimizer(settings)(self.student.parameters())

    _setup(settings)
    teacher, student = make_models(settings)
    train = train_loader(settings, TensorDataset(*make_data(settings)))
    return fit_timed(MinimalKD(student, teacher), train, settings, clock, "minimal_lightning")


# -- torchdistill --------------------------------------------------------------------
def run_torchdistill(settings: Settings, clock: StepClock, **_: Any) -> dict[str, Any]:
    """torchdistill's DistillationBox, built from a config dict, driven as its image-classification example does."""
    from torchdistill.core.distillation import get_distillation_box
    from torchdistill.misc.log import MetricLogger

    _setup(settings)
    teacher, student = make_models(settings)
    teacher.eval()  # torchdistill leaves the teacher's mode to the caller; the others run it in eval
    train_config = {
        "num_epochs": 1,
        "train_data_loader": {
            "dataset_id": "train",
            "sampler": {
                "class_or_func": RandomSampler,
                "kwargs": {"generator": torch.Generator().manual_seed(settings.seed + 1)},
            },
            "kwargs": {"batch_size": settings.batch_size, "num_workers": 0},
        },
        "teacher": {"forward_proc": "forward_batch_only", "requires_grad": False},
        "student": {"forward_proc": "forward_batch_only"},
        "optimizer": {
            "key": "Adam" if settings.optimizer == "adam" else "SGD",
            "kwargs": make_optimizer(settings).keywords,
        },
        "criterion": {
            "key": "WeightedSumLoss",
            "kwargs": {
                "sub_terms": {
                    "kd": {
                        # torchdistill's KDLoss: alpha * CE + beta * T² * KL (batch mean)
                        "criterion": {
                            "key": "KDLoss",
                            "kwargs": {
                                "student_module_path": ".", "student_module_io": "output",
                                "teacher_module_path": ".", "teacher_module_io": "output",
                                "temperature": TEMPERATURE, "alpha": CE_WEIGHT, "beta": KD_WEIGHT,
                                "reduction": "batchmean",
                            },
                        },
                        "weight": 1.0,
                    }
                }
            },
        },
    }
    dataset_dict = {"train": TensorDataset(*make_data(settings))}
    box = get_distillation_box(teacher, student, dataset_dict, train_config, torch.device("cpu"), None, False, 1)
    box.pre_epoch_process(epoch=0)
    metric_logger = MetricLogger(delimiter="  ")
    clock.start()
    for x, y, supp_dict in metric_logger.log_every(box.train_data_loader, LOG_EVERY_N_STEPS, "Epoch: [0]"):
        loss = box.forward_process(x, y, supp_dict)
        box.post_forward_process(loss=loss)
        # the per-step bookkeeping of torchdistill's example training loop
        metric_logger.update(loss=loss.item(), lr=box.optimizer.param_groups[0]["lr"])
        if torch.isnan(loss) or torch.isinf(loss):
            raise ValueError(f"loss = {loss}")
        clock.tick()
    finished = time.perf_counter()
    box.post_epoch_process()
    return clock.result("torchdistill", settings, finished)


CONTENDERS = {
    "hand": run_hand,
    "student_only": run_student_only,
    "distill": run_distill,
    "distill_cached": functools.partial(run_distill, cached=True, name="distill_cached"),
    "torchdistill": run_torchdistill,
    "minimal_lightning": run_minimal_lightning,
    # measured with --extras: the speed options of the run config
    "distill_channels_last": functools.partial(run_distill, channels_last=True, name="distill_channels_last"),
    "distill_compile": functools.partial(run_distill, compile=True, name="distill_compile"),
    "distill_bf16": functools.partial(run_distill, precision="bf16-mixed", name="distill_bf16"),
}
MAIN = ["hand", "student_only", "distill", "distill_cached", "torchdistill", "minimal_lightning"]
EXTRAS = ["distill_channels_last", "distill_compile", "distill_bf16"]
NEEDS_CACHE = {"student_only", "distill_cached"}


def run_contender(
    name: str, settings: Settings, cache_dir: str | None = None, born: float | None = None
) -> dict[str, Any]:
    """Run one contender in this process and return its measurements (``born``: when the process started)."""
    clock = StepClock(settings.warmup, born)
    result = CONTENDERS[name](settings, clock, cache_dir=cache_dir)
    result["threads"] = torch.get_num_threads()
    return result
