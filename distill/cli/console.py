"""What a run prints: quiet libraries, numbered phases, one line per epoch without a bar, final pointers.

Quiet by default, complete on demand: ``verbose=true`` (or Hydra's ``hydra.verbose``) keeps every
Lightning and transformers message. Warnings stay visible either way, except one Lightning warning
that distill's own module causes and a user cannot act on.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only

from distill.lightning_warnings import ignore_lightning_noise

#: the loggers whose INFO lines (GPU/TPU availability, seeds, tips, checkpoint restores) are chatter
CHATTY_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "transformers")


def quiet_libraries(verbose: bool) -> None:
    """Silence the libraries' INFO chatter unless ``verbose``; warnings and errors still come through."""
    ignore_lightning_noise()
    if verbose:
        return
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # torch's C++-extension module warns "No CUDA runtime is found, using CUDA_HOME=..." when a CUDA
    # toolkit is installed on a machine without a GPU (it is imported by the report's export check)
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    # DeepSpeed (imported by transformers' save and load when it is installed) prints through its own handler and sets
    # its logger's level on import, so a filter on that logger keeps its chatter off the console
    logging.getLogger("DeepSpeed").addFilter(_not_deepspeed_chatter)
    # transformers reads these when imported; an already imported one is told directly
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    # distill's own lines on the console without Hydra's time stamp and logger name, and without the ones
    # a phase line says again (the log file keeps them all)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setFormatter(logging.Formatter("%(message)s"))
            handler.addFilter(_not_said_by_phase_line)


def _not_deepspeed_chatter(record: logging.LogRecord) -> bool:
    """False for DeepSpeed's INFO lines and its notice that it found no GPU (it runs on the CPU accelerator then)."""
    return record.levelno >= logging.WARNING and not str(record.msg).startswith("Setting accelerator to CPU")


def _not_said_by_phase_line(record: logging.LogRecord) -> bool:
    """False for a record a phase line says again, once the command prints phase lines (``distill run``)."""
    return not (getattr(record, "said_by_phase_line", False) and PHASES.total)


def is_verbose(cfg: Mapping[str, Any], hydra_verbose: Any = False) -> bool:
    """``verbose=true`` in the config, or any ``hydra.verbose`` setting."""
    return bool(cfg.get("verbose", False)) or bool(hydra_verbose)


def trainer_options(trainer_cfg: Mapping[str, Any], options: dict[str, Any], verbose: bool) -> dict[str, Any]:
    """``options`` for the Trainer, plus the quiet defaults the user did not set themselves.

    No model summary unless verbose; with the progress bar off, one line per epoch instead.
    """
    options = dict(options)
    given = {**trainer_cfg, **options}
    if not verbose and "enable_model_summary" not in given:
        options["enable_model_summary"] = False
    callbacks = list(options.get("callbacks") or [])
    if not given.get("enable_progress_bar", True):
        options["callbacks"] = [*callbacks, EpochLines()]
    elif "callbacks" in options and not any(isinstance(c, L.pytorch.callbacks.ProgressBar) for c in callbacks):
        bar = short_names_bar()
        if bar is not None:
            options["callbacks"] = [*callbacks, bar]
    return options


def short_name(metric: str) -> str:
    """A metric's name in the progress bar: ``train/loss/kd`` → ``kd``, ``train/loss`` → ``loss``, ``val/acc`` → ``val_acc``."""
    if metric.startswith("train/loss/"):
        return metric.removeprefix("train/loss/")
    return metric.removeprefix("train/").replace("/", "_")


def short_names_bar() -> Any:
    """Lightning's Rich progress bar showing every loss term under a short name (None without Rich)."""
    try:
        from lightning.pytorch.callbacks import RichProgressBar
    except ImportError:
        return None

    class ShortNamesBar(RichProgressBar):
        def get_metrics(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, Any]:
            return {short_name(k): v for k, v in super().get_metrics(trainer, module).items()}

    try:
        return ShortNamesBar()
    except ModuleNotFoundError:  # rich not installed: Lightning's own choice (tqdm)
        return None


def epoch_line(
    epoch: int,
    max_epochs: int,
    losses: Mapping[str, float],
    metrics: Mapping[str, float],
    seconds: float,
    weights: Mapping[str, float] | None = None,
) -> str:
    """``epoch 2/10  loss 0.412 (0.9 kd 0.301, 0.1 ce 0.111)  val/acc 0.953  3.1 s``.

    The total and each term are means over the same steps; a term's weight (``weights``, by term
    name) is written before it, so the total is the weighted sum of the terms shown.
    """
    weights = weights or {}
    text = f"epoch {epoch}/{max_epochs}" if max_epochs > 0 else f"epoch {epoch}"
    if "train/loss" in losses:
        text += f"  loss {losses['train/loss']:.4g}"
    terms = []
    for key, value in losses.items():
        if key.startswith("train/loss/"):
            name = key[len("train/loss/"):]
            weight = f"{weights[name]:.4g} " if name in weights else ""
            terms.append(f"{weight}{short_name(key)} {value:.4g}")
    if terms:
        text += f" ({', '.join(terms)})"
    for key, value in metrics.items():
        text += f"  {key} {value:.4g}"
    return text + f"  {seconds:.1f} s"


class EpochLines(L.Callback):
    """One line per epoch for runs without a progress bar: the loss and each term, means over every step.

    The sums stay on the device (no host sync per step) and are read once, at the epoch's end.
    The values come from the module's ``step_losses`` (every step's, not only the logged steps'),
    so the total shown is the weighted sum of the terms shown.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._started, self._sums, self._counts = time.perf_counter(), {}, {}

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, *args: Any) -> None:
        losses = getattr(module, "step_losses", None)
        if losses is None:  # another LightningModule: its returned loss (divided by the accumulation, as Lightning does)
            loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
            losses = {"train/loss": loss.detach()} if isinstance(loss, torch.Tensor) else {}
        for key, value in losses.items():
            self._add(key, value)

    def _add(self, key: str, value: torch.Tensor) -> None:
        # a term a step leaves out (no labelled sample in it) is averaged over the steps it ran
        self._sums[key] = self._sums[key] + value if key in self._sums else value.clone()
        self._counts[key] = self._counts.get(key, 0) + 1

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        losses = {k: float(v) / self._counts[k] for k, v in self._sums.items()}
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k in ("val/acc", "val/agreement")}
        terms = getattr(module, "loss_terms", {})
        weights = {name: float(term.weight_at(trainer.current_epoch)) for name, term in terms.items() if hasattr(term, "weight_at")}
        seconds = time.perf_counter() - self._started
        print(epoch_line(trainer.current_epoch + 1, trainer.max_epochs or 0, losses, metrics, seconds, weights), flush=True)


class Phases:
    """Numbered phase lines, ``[2/3] distilling …``, printed by rank zero only."""

    def __init__(self) -> None:
        self.total, self.index, self.seen = 0, 0, set()

    def begin(self, total: int, run_dir: Path | str) -> None:
        self.total, self.index, self.seen = total, 0, set()
        say(f"run directory: {run_dir}")

    def enter(self, key: str, text: str) -> None:
        """Start phase ``key`` (a phase already entered keeps its number: ensemble members)."""
        if key not in self.seen:
            self.seen.add(key)
            self.index += 1
        say(f"[{self.index}/{self.total}] {text}" if self.total else text)

    def enter_once(self, key: str, text: str) -> None:
        """Start phase ``key`` unless it was entered already (a teacher trained now needs no second line)."""
        if key not in self.seen:
            self.enter(key, text)


PHASES = Phases()


def loss_terms_text(loss: Mapping[str, Any]) -> str:
    """``kd ×0.9 + ce ×0.1``: the terms of a phase line, each with its weight."""
    return " + ".join(f"{name} ×{term.weight:g}" if isinstance(getattr(term, "weight", None), (int, float)) else name
                      for name, term in loss.items())


def epochs(n: Any) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def say(text: str) -> None:
    if rank_zero_only.rank == 0:
        print(text, flush=True)


@contextmanager
def measuring_bar(enabled: bool) -> Iterator[Any]:
    """A progress bar with ETA for the report's measurements; yields ``step(done, total, what)`` (or a no-op)."""
    if not enabled or rank_zero_only.rank != 0:
        yield lambda done, total, what: None
        return
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    except ImportError:
        yield lambda done, total, what: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("measuring", total=None)

        def step(done: int, total: int, what: str) -> None:
            progress.update(task, completed=done, total=total, description=what)

        yield step


def pointers(summary: Mapping[str, Any]) -> str:
    """The last lines of a run: where the report, the figures and the student's weights are."""
    report = summary.get("report") or {}
    lines = [f"report: {report.get('markdown')}"]
    figures = [report[k] for k in ("learning_curves", "reliability", "gradient_statistics") if report.get(k)]
    if figures:
        lines.append("figures: " + ", ".join(figures))
    lines.append(f"student weights: {summary['student']['weights']}")
    return "\n".join(lines)
