"""A bank of one embedding per training sample, updated with momentum and kept identical across DDP ranks.

Used by :class:`distill.losses.CRD` for its negatives (Wu et al. 2018's memory
bank, as in Tian et al.'s CRD).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from distill.errors import DistillError


def distributed() -> bool:
    """Whether a ``torch.distributed`` process group with more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_across_ranks(tensor: Tensor) -> Tensor:
    """``tensor`` from every rank concatenated along dimension 0, in rank order (itself when not distributed).

    The ranks may hold different numbers of rows (a last, smaller batch); the
    result is the same on every rank. No gradient flows through it.
    """
    if not distributed():
        return tensor
    world = dist.get_world_size()
    rows = torch.tensor([tensor.shape[0]], dtype=torch.long, device=tensor.device)
    all_rows = [torch.zeros_like(rows) for _ in range(world)]
    dist.all_gather(all_rows, rows)
    counts = [int(n) for n in all_rows]
    padded = tensor.new_zeros((max(counts), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[:n] for part, n in zip(parts, counts)])


def mean_across_ranks(tensor: Tensor) -> Tensor:
    """The mean of ``tensor`` over the ranks (itself when not distributed)."""
    if not distributed():
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()


def _last_occurrences(index: Tensor) -> Tensor:
    """Positions of the last occurrence of each distinct value in ``index``."""
    unique, inverse = torch.unique(index, return_inverse=True)
    positions = torch.arange(len(index), device=index.device)
    last = torch.full((len(unique),), -1, dtype=torch.long, device=index.device)
    return last.scatter_reduce(0, inverse, positions, reduce="amax")


class MemoryBank(nn.Module):
    """``num_samples`` embeddings of size ``dim``, one per training sample, in a buffer.

    :meth:`update` replaces each given sample's entry by
    ``normalize(momentum * old + (1 - momentum) * new)``. Under
    ``torch.distributed`` it first gathers the indices and embeddings of all
    ranks, so every rank applies the same update and the banks stay identical.
    The initial entries are uniform in ``[-a, a]`` with ``a = 1 / sqrt(dim / 3)``
    (rows of norm about 1, as in the CRD code), drawn from a generator seeded
    with ``seed`` so that every rank starts from the same bank. The bank is a
    registered buffer: it follows the module across devices and is saved in
    checkpoints.

    Args:
        num_samples: the number of training samples (the indices run from 0 to ``num_samples - 1``).
        dim: the embedding size.
        momentum: the weight of the old entry in an update, in [0, 1) (0.5 in CRD).
        seed: the seed of the initial entries.
    """

    def __init__(self, num_samples: int, dim: int, momentum: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        if isinstance(num_samples, bool) or int(num_samples) != num_samples or num_samples < 1:
            raise DistillError(f"MemoryBank: num_samples must be a whole number >= 1, got {num_samples!r}")
        if int(dim) != dim or dim < 1:
            raise DistillError(f"MemoryBank: dim must be a whole number >= 1, got {dim!r}")
        momentum = float(momentum)
        if not 0.0 <= momentum < 1.0:
            raise DistillError(f"MemoryBank: momentum must be in [0, 1), got {momentum}; CRD uses 0.5")
        self.momentum = momentum
        bound = 1.0 / math.sqrt(int(dim) / 3.0)
        generator = torch.Generator().manual_seed(int(seed))
        memory = torch.rand(int(num_samples), int(dim), generator=generator) * (2 * bound) - bound
        self.register_buffer("memory", memory)

    @property
    def num_samples(self) -> int:
        return self.memory.shape[0]

    @property
    def dim(self) -> int:
        return self.memory.shape[1]

    def forward(self, index: Tensor) -> Tensor:
        """The entries of the samples ``index`` (any shape), shape ``[*index.shape, dim]``, detached."""
        rows = self.memory.index_select(0, index.reshape(-1).to(self.memory.device))
        return rows.reshape(*index.shape, self.dim).detach()

    def sample(self, batch_size: int, num: int) -> Tensor:
        """``[batch_size, num]`` sample indices drawn uniformly with replacement."""
        return torch.randint(0, self.num_samples, (batch_size, num), device=self.memory.device)

    @torch.no_grad()
    def update(self, index: Tensor, embeddings: Tensor) -> None:
        """Move the entries of samples ``index`` ``[B]`` towards ``embeddings`` ``[B, dim]`` (all ranks' samples)."""
        index = index.reshape(-1).to(device=self.memory.device, dtype=torch.long)
        embeddings = embeddings.detach().to(device=self.memory.device, dtype=self.memory.dtype)
        if embeddings.shape != (len(index), self.dim):
            raise DistillError(
                f"MemoryBank.update: expected {len(index)} embeddings of size {self.dim}, got {tuple(embeddings.shape)}"
            )
        index = gather_across_ranks(index)
        embeddings = gather_across_ranks(embeddings)
        if len(index) == 0:
            return
        low, high = int(index.min()), int(index.max())
        if low < 0 or high >= self.num_samples:
            raise DistillError(
                f"sample index {high if high >= self.num_samples else low} is outside the memory bank of "
                f"{self.num_samples} samples; num_samples must be the number of training samples "
                "(and the data must give each sample's index within the training set)"
            )
        keep = _last_occurrences(index)  # a sample seen twice in one step (DDP padding) is updated once
        index, embeddings = index[keep], embeddings[keep]
        mixed = self.memory.index_select(0, index) * self.momentum + embeddings * (1.0 - self.momentum)
        self.memory.index_copy_(0, index, F.normalize(mixed, dim=1))

    def extra_repr(self) -> str:
        return f"num_samples={self.num_samples}, dim={self.dim}, momentum={self.momentum}"
