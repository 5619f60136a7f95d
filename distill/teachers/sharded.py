"""The frozen teacher under Lightning's FSDP and DeepSpeed strategies: sharded over the ranks, for forward passes only.

Lightning's :class:`~lightning.pytorch.strategies.FSDPStrategy` and
:class:`~lightning.pytorch.strategies.DeepSpeedStrategy` wrap the LightningModule, and the teacher
is not part of it (it is kept out of the module tree so that it never reaches the optimizer or the
checkpoint), so without this each rank would hold the whole teacher. Here the teacher is sharded
as the student is:

- under FSDP it gets its own FSDP root with the strategy's sharding, wrapping policy, mixed
  precision and device: each rank keeps ``1/world_size`` of its weights and gathers a unit's
  weights only for that unit's forward pass;
- under DeepSpeed ZeRO stage 3 it gets its own DeepSpeed engine with the strategy's ZeRO-3
  settings (parameter offload included) and precision, and no optimizer: its parameters are
  partitioned over the ranks and gathered layer by layer in the forward pass. ZeRO stages 1 and 2
  shard only gradients and optimizer state, which a frozen teacher has none of, so there the
  teacher stays whole on each rank, as the student's weights do.

Its weights never require grad, so it has no gradients and no optimizer state, and it stays out
of the checkpoint as before.
"""

from __future__ import annotations

import argparse
from typing import Any

from torch import nn

from distill.models.fingerprint import weights_sha256

#: the strategy settings the student's FSDP wrap uses that the teacher's uses too (the rest are about training)
_SHARED_SETTINGS = ("auto_wrap_policy", "limit_all_gathers", "forward_prefetch", "process_group", "device_mesh")


def is_fsdp_strategy(strategy: Any) -> bool:
    from lightning.pytorch.strategies import FSDPStrategy

    return isinstance(strategy, FSDPStrategy)


def is_deepspeed_stage_3(strategy: Any) -> bool:
    from lightning.pytorch.strategies import DeepSpeedStrategy

    if not isinstance(strategy, DeepSpeedStrategy) or not isinstance(strategy.config, dict):
        return False
    return (strategy.config.get("zero_optimization") or {}).get("stage") == 3


def is_deepspeed_engine(model: nn.Module) -> bool:
    """Whether ``model`` is a DeepSpeed engine (one :func:`shard_for_forward` made, or any other)."""
    return type(model).__name__ == "DeepSpeedEngine" and hasattr(model, "module")


def shard_for_forward(teacher: nn.Module, strategy: Any) -> nn.Module:
    """``teacher`` wrapped as ``strategy`` wraps the student: in ``FullyShardedDataParallel`` under FSDP, in a
    forward-only DeepSpeed engine under DeepSpeed ZeRO stage 3; unchanged under any other strategy, or when it owns
    no parameters (the adapters-disabled base of a LoRA student, which is sharded with the student)."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    if isinstance(teacher, FullyShardedDataParallel) or is_deepspeed_engine(teacher):
        return teacher
    if next(teacher.parameters(), None) is None:
        return teacher
    if is_deepspeed_stage_3(strategy):
        return _deepspeed_forward_engine(teacher, strategy)
    if not is_fsdp_strategy(strategy):
        return teacher
    settings = {k: v for k, v in strategy.kwargs.items() if k in _SHARED_SETTINGS}
    return FullyShardedDataParallel(
        teacher,
        sharding_strategy=strategy.sharding_strategy,
        mixed_precision=strategy.mixed_precision_config,
        cpu_offload=strategy.cpu_offload,
        device_id=strategy.root_device,  # a torch.device: the CPU one too (an index of None is refused on CPU)
        use_orig_params=True,  # the teacher's parameter names stay as they were (hooks, hashes)
        **settings,
    )


def _deepspeed_forward_engine(teacher: nn.Module, strategy: Any) -> nn.Module:
    """A DeepSpeed engine holding ``teacher`` partitioned by ZeRO-3 as the strategy's config says, with no optimizer."""
    import deepspeed

    zero = {k: v for k, v in strategy.config["zero_optimization"].items() if k != "offload_optimizer"}
    config: dict[str, Any] = {"train_micro_batch_size_per_gpu": 1, "zero_optimization": zero}
    config.update(_deepspeed_precision(strategy))
    device = strategy.root_device
    engine, *_ = deepspeed.initialize(
        # the device index of a GPU rank; on CPU (no index) the process's local rank, as DeepSpeed's CPU accelerator needs
        args=argparse.Namespace(device_rank=device.index if device.index is not None else strategy.local_rank),
        config=config, model=teacher, model_parameters=[], optimizer=None, lr_scheduler=None, dist_init_required=False,
    )
    engine.eval()  # DeepSpeedEngine.eval returns None
    return engine


def _deepspeed_precision(strategy: Any) -> dict[str, Any]:
    """The strategy's half-precision setting for the teacher's engine: its config's own, else from the Trainer's precision."""
    for key in ("bf16", "fp16"):
        if key in strategy.config:
            return {key: {"enabled": bool(strategy.config[key].get("enabled", True))}}
    precision = str(getattr(strategy.precision_plugin, "precision", "32"))
    if precision.startswith("bf16"):
        return {"bf16": {"enabled": True}}
    if precision.startswith("16"):
        return {"fp16": {"enabled": True}}
    return {}


def teacher_weights_sha256(teacher: nn.Module) -> str:
    """:func:`~distill.models.weights_sha256` of the whole teacher, also when a DeepSpeed engine holds it partitioned
    (its parameters are gathered for the hash: under ZeRO-3 every rank must call this). An FSDP teacher's state dict
    is already whole."""
    if not is_deepspeed_engine(teacher):
        return weights_sha256(teacher)
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(teacher.module.parameters()), modifier_rank=None):
        return weights_sha256(teacher.module)
