"""The norm of each weighted loss term's gradient on the student, every training step."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import lightning as L
from torch import Tensor

from distill.diagnostics.term_gradients import term_gradients, trainable_parameters

if TYPE_CHECKING:
    from distill.module import DistillationModule


class GradientNorms(L.Callback):
    """Logs ``train/grad_norm/<term>``: the norm of each weighted term's gradient on the student's parameters.

    To see which term dominates or explodes. Costs one extra backward pass per
    term and step. ``DistillationModule(log_grad_norms=True)`` (``log_grad_norms=true``
    in the config) adds it by itself.
    """

    def on_fit_start(self, trainer: L.Trainer, pl_module: DistillationModule) -> None:
        pl_module.record_steps = True

    def on_before_backward(self, trainer: L.Trainer, pl_module: DistillationModule, loss: Tensor) -> None:
        if pl_module.last_step is None:
            return
        outputs, values = pl_module.last_step
        weights = {name: pl_module.loss_terms[name].weight_at(pl_module.current_epoch) for name in values}
        for name, gradient in term_gradients(values, weights, trainable_parameters(pl_module.student)).items():
            pl_module.log(f"train/grad_norm/{name}", gradient.norm(), batch_size=len(outputs.student))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: DistillationModule, *args: Any) -> None:
        pl_module.last_step = None  # the step's activations are not kept past it
