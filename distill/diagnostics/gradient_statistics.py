"""How noisy each loss term's gradient is across the samples of a batch, and whether terms pull together."""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING, Any

import lightning as L
from torch import Tensor

from distill.diagnostics.term_gradients import per_sample_gradient_variance, term_gradients, trainable_parameters
from distill.errors import DistillError

if TYPE_CHECKING:
    from distill.module import DistillationModule


class GradientStatistics(L.Callback):
    """Every ``every_n_steps`` training steps, logs for the weighted loss terms on the student's parameters:

    - ``train/grad_var/<term>``: the variance of the per-sample gradients, summed over the
      parameters (exact per-sample gradients, see
      :func:`~distill.diagnostics.per_sample_gradient_variance`), for the terms that have a
      per-sample form (:meth:`~distill.losses.LossTerm.per_sample`; relation and feature terms have none);
    - ``train/grad_cos/<a>__<b>``: the cosine between two terms' batch gradients (< 0: they pull against each other);
    - ``train/grad_ratio/<a>__<b>``: the ratio of their norms, ``|g_a| / |g_b|``.

    The step's own gradient is untouched. Config: ``diagnostics.gradients.every_n_steps=50`` (0: off).

    Args:
        every_n_steps: measure on every this many optimizer steps; 0 switches it off.
        chunk_size: samples whose gradients are computed in one vmapped backward pass (memory: this × parameters).
    """

    def __init__(self, every_n_steps: int = 0, chunk_size: int = 8) -> None:
        for name, value, least in (("every_n_steps", every_n_steps, 0), ("chunk_size", chunk_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise DistillError(
                    f"GradientStatistics: {name} must be a whole number >= {least}, got {value!r}; "
                    "e.g. diagnostics.gradients.every_n_steps=50"
                )
        self.every_n_steps = every_n_steps
        self.chunk_size = chunk_size

    def on_fit_start(self, trainer: L.Trainer, pl_module: DistillationModule) -> None:
        if self.every_n_steps:
            pl_module.record_steps = True

    def on_before_backward(self, trainer: L.Trainer, pl_module: DistillationModule, loss: Tensor) -> None:
        if not self.every_n_steps or trainer.global_step % self.every_n_steps or pl_module.last_step is None:
            return
        # straight to the loggers, as LearningRateMonitor does: LightningModule.log would repeat the
        # last values on the steps in between, which were not measured
        metrics = {name: float(value) for name, value in self.measure(pl_module).items()}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def measure(self, pl_module: DistillationModule) -> dict[str, Tensor]:
        """The statistics of the module's last recorded training step, by the names they are logged under."""
        outputs, values = pl_module.last_step
        params = trainable_parameters(pl_module.student)
        weights = {name: pl_module.loss_terms[name].weight_at(pl_module.current_epoch) for name in values}
        stats = {}
        for name in values:
            per_sample = pl_module.loss_terms[name].per_sample(outputs)
            if per_sample is not None and per_sample.requires_grad:
                per_sample = per_sample.reshape(len(per_sample), -1).mean(dim=1) * weights[name]
                stats[f"train/grad_var/{name}"] = per_sample_gradient_variance(per_sample, params, self.chunk_size)
        gradients = term_gradients(values, weights, params)
        for a, b in combinations(gradients, 2):
            g_a, g_b = gradients[a], gradients[b]
            stats[f"train/grad_cos/{a}__{b}"] = (g_a @ g_b) / (g_a.norm() * g_b.norm()).clamp_min(1e-30)
            stats[f"train/grad_ratio/{a}__{b}"] = g_a.norm() / g_b.norm().clamp_min(1e-30)
        return {name: value.float() for name, value in stats.items()}

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: DistillationModule, *args: Any) -> None:
        pl_module.last_step = None
