"""The frozen teacher under Lightning's FSDP strategy: sharded over the ranks, for forward passes only.

Lightning's :class:`~lightning.pytorch.strategies.FSDPStrategy` wraps the LightningModule, and
the teacher is not part of it (it is kept out of the module tree so that it never reaches the
optimizer or the checkpoint), so without this each rank would hold the whole teacher. Here the
teacher gets its own FSDP root with the strategy's sharding, wrapping policy, mixed precision
and device: each rank keeps ``1/world_size`` of its weights and gathers a unit's weights only for
that unit's forward pass. Its weights never require grad, so it has no gradients and no optimizer
state, and it stays out of the checkpoint as before.
"""

from __future__ import annotations

from typing import Any

from torch import nn

#: the strategy settings the student's FSDP wrap uses that the teacher's uses too (the rest are about training)
_SHARED_SETTINGS = ("auto_wrap_policy", "limit_all_gathers", "forward_prefetch", "process_group", "device_mesh")


def is_fsdp_strategy(strategy: Any) -> bool:
    from lightning.pytorch.strategies import FSDPStrategy

    return isinstance(strategy, FSDPStrategy)


def shard_for_forward(teacher: nn.Module, strategy: Any) -> nn.Module:
    """``teacher`` wrapped in ``FullyShardedDataParallel`` as ``strategy`` wraps the student; unchanged
    under any other strategy, or when it owns no parameters (the adapters-disabled base of a LoRA student,
    which is sharded with the student)."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    if not is_fsdp_strategy(strategy) or isinstance(teacher, FullyShardedDataParallel):
        return teacher
    if next(teacher.parameters(), None) is None:
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
