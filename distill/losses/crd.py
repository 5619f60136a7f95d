"""CRD: Tian et al., "Contrastive Representation Distillation" (ICLR 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill.errors import DistillError
from distill.losses._maps import require_built
from distill.losses.base import StepOutputs, check_temperature
from distill.losses.feature_term import FeatureTerm
from distill.losses.functional import crd_nce_loss, crd_scores
from distill.losses.memory_bank import MemoryBank, mean_across_ranks


class CRD(FeatureTerm):
    """Contrastive loss between student and teacher embeddings, with negatives from memory banks.

    Linear heads map the student's and the teacher's features (flattened,
    usually the pooled penultimate layer, ``avgpool`` of torchvision ResNets)
    to ``embed_dim`` and L2-normalise them; both heads are trained with the
    student. Two memory banks hold a momentum average of every training
    sample's student and teacher embedding. For a batch, the student's
    embedding is the anchor against the teacher bank's entry of the same sample
    (positive) and of ``num_negatives`` samples drawn uniformly (negatives), and
    the teacher's embedding likewise against the student bank; the term is the
    sum of the NCE losses of both directions (:func:`~distill.losses.functional.crd_nce_loss`),
    with scores :math:`\\exp(s/\\tau) / Z` and :math:`Z` set once, from the first
    training batch, to the mean score times ``num_samples`` (as the official
    code). After the loss, the banks move towards the batch's embeddings
    (:class:`~distill.losses.memory_bank.MemoryBank`); under DDP every rank
    gathers all ranks' samples first, so the banks stay identical.

    The term needs each sample's index within the training set
    (``outputs.index``): ``python -m distill.run`` asks the data module for it
    (``with_index``); your own data must yield ``(x, y, index)``.
    Negatives are drawn uniformly from all samples, the official code's
    default (its CIFAR script can also draw them from other classes only).
    Outside training (validation) no index is needed and nothing is updated:
    the positive is the other side's current embedding and the negatives come
    from the banks.

    Args:
        num_samples: the number of training samples (the banks' size); the
            indices must run from 0 to ``num_samples - 1``.
        student_layer: the student's layer (one).
        teacher_layer: the teacher's layer; the student's name by default.
        embed_dim: the embedding size (128).
        num_negatives: negatives per positive (16384 in the paper), capped at ``num_samples``.
        temperature: the NCE temperature :math:`\\tau` (0.07).
        momentum: the banks' momentum (0.5).
        weight: the term's weight in the total loss (0.8 in the paper's benchmark).
    """

    feature_form = "flat"
    one_layer_only = True
    repr_fields = ("num_samples", "embed_dim", "num_negatives", "temperature", "momentum")
    needs_build = True
    needs_index = True

    def __init__(
        self,
        num_samples: int,
        student_layer: str = "avgpool",
        teacher_layer: str | None = None,
        embed_dim: int = 128,
        num_negatives: int = 16384,
        temperature: float = 0.07,
        momentum: float = 0.5,
        weight: float = 1.0,
    ) -> None:
        super().__init__(student_layer, teacher_layer, weight)
        for name, value in (("num_samples", num_samples), ("embed_dim", embed_dim), ("num_negatives", num_negatives)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise DistillError(f"CRD: {name} must be a whole number >= 1, got {value!r}")
        temperature = check_temperature(temperature, "CRD", typical="the paper uses 0.07")
        self.num_samples = int(num_samples)
        self.embed_dim = int(embed_dim)
        self.num_negatives = min(int(num_negatives), self.num_samples)
        self.temperature = temperature
        self.momentum = float(momentum)
        if not 0.0 <= self.momentum < 1.0:
            raise DistillError(f"CRD: momentum must be in [0, 1), got {momentum}; the paper uses 0.5")
        self.student_head: nn.Module | None = None
        self.teacher_head: nn.Module | None = None
        self.student_bank: MemoryBank | None = None
        self.teacher_bank: MemoryBank | None = None
        # Z of the student-anchor and the teacher-anchor scores; < 0 until the first training batch
        self.register_buffer("normalizers", torch.full((2,), -1.0))

    def build(self, outputs: StepOutputs) -> None:
        (student,), (teacher,) = self.features(outputs)
        device = student.device
        self.student_head = nn.Linear(student.shape[1], self.embed_dim).to(device)
        self.teacher_head = nn.Linear(teacher.shape[1], self.embed_dim).to(device)
        self.student_bank = MemoryBank(self.num_samples, self.embed_dim, self.momentum, seed=0).to(device)
        self.teacher_bank = MemoryBank(self.num_samples, self.embed_dim, self.momentum, seed=1).to(device)

    def _index(self, outputs: StepOutputs, batch_size: int) -> Tensor:
        if outputs.index is None:
            raise DistillError(
                "CRD needs each sample's index in the training set, but the batch has none; "
                "set data.with_index=true (DigitsDataModule) or yield (x, y, index) batches"
            )
        index = torch.as_tensor(outputs.index).reshape(-1).to(device=self.normalizers.device, dtype=torch.long)
        if len(index) != batch_size:
            raise DistillError(f"CRD: the batch has {batch_size} samples but {len(index)} indices")
        if len(index) and (int(index.min()) < 0 or int(index.max()) >= self.num_samples):
            raise DistillError(
                f"CRD: sample indices run from {int(index.min())} to {int(index.max())}, outside 0 to "
                f"{self.num_samples - 1}; num_samples must be the number of training samples "
                "(e.g. loss.crd.num_samples=N) and the indices those within the training set"
            )
        return index

    def compute(self, outputs: StepOutputs) -> Tensor:
        require_built(self.student_head is not None, "CRD")
        (student,), (teacher,) = self.features(outputs)
        f_s = F.normalize(self.student_head(student.float()), dim=1)
        f_t = F.normalize(self.teacher_head(teacher.float()), dim=1)
        batch_size = len(f_s)
        negatives = self.student_bank.sample(batch_size, self.num_negatives)
        if self.training:
            index = self._index(outputs, batch_size)
            candidates = torch.cat([index.unsqueeze(1), negatives], dim=1)
            teacher_candidates, student_candidates = self.teacher_bank(candidates), self.student_bank(candidates)
        else:
            teacher_candidates = torch.cat([f_t.detach().unsqueeze(1), self.teacher_bank(negatives)], dim=1)
            student_candidates = torch.cat([f_s.detach().unsqueeze(1), self.student_bank(negatives)], dim=1)
        student_scores = crd_scores(f_s, teacher_candidates, self.temperature)
        teacher_scores = crd_scores(f_t, student_candidates, self.temperature)
        normalizers = self.normalizers
        if bool((normalizers < 0).any()):
            first = torch.stack([student_scores.detach().mean(), teacher_scores.detach().mean()]) * self.num_samples
            normalizers = mean_across_ranks(first) if self.training else first
            if self.training:
                self.normalizers.copy_(normalizers)
        loss = crd_nce_loss(student_scores / normalizers[0], self.num_samples) + crd_nce_loss(
            teacher_scores / normalizers[1], self.num_samples
        )
        if self.training:
            self.student_bank.update(index, f_s.detach())
            self.teacher_bank.update(index, f_t.detach())
        return loss
