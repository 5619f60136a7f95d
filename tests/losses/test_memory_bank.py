"""MemoryBank: the momentum update by hand, bounds, duplicates; identical banks (and CRD's) across DDP ranks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from distill.errors import DistillError
from distill.losses import CRD, StepOutputs
from distill.losses.memory_bank import MemoryBank


def hand_update(old: list[float], new: list[float], momentum: float) -> list[float]:
    mixed = [momentum * o + (1 - momentum) * n for o, n in zip(old, new)]
    norm = math.sqrt(sum(v * v for v in mixed))
    return [v / norm for v in mixed]


def test_initial_bank_is_seeded_uniform_with_rows_of_norm_about_one():
    bank = MemoryBank(2000, 16, seed=3)
    bound = 1 / math.sqrt(16 / 3)
    assert bank.memory.shape == (2000, 16)
    assert bank.memory.abs().max() <= bound
    assert bank.memory.norm(dim=1).mean().item() == pytest.approx(1.0, abs=0.05)
    assert torch.equal(bank.memory, MemoryBank(2000, 16, seed=3).memory)
    assert not torch.equal(bank.memory, MemoryBank(2000, 16, seed=4).memory)


def test_update_moves_entries_by_momentum_and_normalises_by_hand():
    bank = MemoryBank(5, 2, momentum=0.5)
    bank.memory.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0], [1.0, 1.0], [0.0, -2.0]]))
    before = bank.memory.clone()
    bank.update(torch.tensor([2, 0]), torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    # sample 2: 0.5 * (3, 4) + 0.5 * (0, 1) = (1.5, 2.5), normalised; sample 0: (0.5, 0.5) normalised
    expected_2 = [1.5 / math.sqrt(8.5), 2.5 / math.sqrt(8.5)]
    assert bank.memory[2].tolist() == pytest.approx(expected_2)
    assert bank.memory[0].tolist() == pytest.approx([1 / math.sqrt(2), 1 / math.sqrt(2)])
    for row in (1, 3, 4):
        assert torch.equal(bank.memory[row], before[row])


def test_update_with_another_momentum():
    bank = MemoryBank(3, 3, momentum=0.9)
    old = bank.memory[1].tolist()
    bank.update(torch.tensor([1]), torch.tensor([[0.0, 0.0, 1.0]]))
    assert bank.memory[1].tolist() == pytest.approx(hand_update(old, [0.0, 0.0, 1.0], 0.9), rel=1e-6)


def test_a_sample_given_twice_is_updated_once_with_its_last_embedding():
    bank = MemoryBank(4, 2, momentum=0.5)
    old = bank.memory[3].tolist()
    bank.update(torch.tensor([3, 1, 3]), torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]))
    assert bank.memory[3].tolist() == pytest.approx(hand_update(old, [0.0, 1.0], 0.5), rel=1e-6)


def test_lookup_keeps_the_index_shape_and_is_detached():
    bank = MemoryBank(6, 3)
    index = torch.tensor([[0, 5], [2, 2]])
    rows = bank(index)
    assert rows.shape == (2, 2, 3) and not rows.requires_grad
    assert torch.equal(rows[1, 0], bank.memory[2])
    assert bank.sample(4, 7).shape == (4, 7)


def test_index_outside_the_bank_is_a_clear_error():
    bank = MemoryBank(4, 2)
    with pytest.raises(DistillError, match="num_samples must be the number of training samples"):
        bank.update(torch.tensor([4]), torch.ones(1, 2))


@pytest.mark.parametrize("kwargs", [{"num_samples": 0, "dim": 2}, {"num_samples": 3, "dim": 2, "momentum": 1.0}])
def test_bad_settings_are_rejected(kwargs):
    with pytest.raises(DistillError):
        MemoryBank(**kwargs)


def test_bank_is_a_buffer_saved_in_the_state_dict():
    bank = MemoryBank(3, 2)
    assert set(bank.state_dict()) == {"memory"}
    assert not list(bank.parameters())


# -- DDP ---------------------------------------------------------------------------------
RANK_INDICES = {0: [0, 1, 2, 3, 10], 1: [4, 5, 6, 10]}  # unequal batches; sample 10 on both ranks


def _ddp_update(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        bank = MemoryBank(32, 8, momentum=0.5, seed=0)
        before = bank.memory.clone()
        index = torch.tensor(RANK_INDICES[rank])
        embeddings = F.normalize(torch.randn(len(index), 8, generator=torch.Generator().manual_seed(rank)), dim=1)
        bank.update(index, embeddings)
        torch.save({"before": before, "after": bank.memory.clone(), "embeddings": embeddings}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_banks_stay_identical_across_ddp_ranks(tmp_path, monkeypatch):
    # the spawned processes import this module by name (pytest runs with --import-mode=importlib)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    mp.spawn(_ddp_update, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert torch.equal(ranks[0]["before"], ranks[1]["before"])
    assert torch.equal(ranks[0]["after"], ranks[1]["after"])
    before, after = ranks[0]["before"], ranks[0]["after"]
    updated = set()
    for rank in (0, 1):  # both ranks' samples are in both banks; the shared sample keeps rank 1's (last)
        for row, sample in enumerate(RANK_INDICES[rank]):
            if sample == 10 and rank == 0:
                continue
            new = ranks[rank]["embeddings"][row].tolist()
            assert after[sample].tolist() == pytest.approx(hand_update(before[sample].tolist(), new, 0.5), rel=1e-5)
            updated.add(sample)
    for sample in set(range(32)) - updated:
        assert torch.equal(after[sample], before[sample])


def crd_outputs(student, teacher, index):
    return StepOutputs(
        student=torch.zeros(len(student), 2),
        teacher=torch.zeros(len(student), 2),
        index=index,
        student_features={"s": student},
        teacher_features={"t": teacher},
    )


def _ddp_crd_step(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)  # the same heads on both ranks, as DDP would broadcast them
        term = CRD(num_samples=16, student_layer="s", teacher_layer="t", embed_dim=4, num_negatives=3)
        term.build(crd_outputs(torch.randn(2, 5), torch.randn(2, 6), None))
        torch.manual_seed(1 + rank)  # each rank its own batch
        index = torch.tensor([0, 1, 2]) + 3 * rank
        term.compute(crd_outputs(torch.randn(3, 5), torch.randn(3, 6), index))
        torch.save({name: buffer.clone() for name, buffer in term.named_buffers()}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_crd_banks_and_normalizers_agree_across_ddp_ranks(tmp_path, monkeypatch):
    # the spawned processes import this module by name (pytest runs with --import-mode=importlib)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    mp.spawn(_ddp_crd_step, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    first, second = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for name in ("student_bank.memory", "teacher_bank.memory", "normalizers"):
        assert torch.equal(first[name], second[name]), name  # Z too: the ranks' batches differ, their mean is shared
    assert (first["normalizers"] > 0).all()
    fresh = CRD(num_samples=16, student_layer="s", teacher_layer="t", embed_dim=4)
    fresh.build(crd_outputs(torch.randn(2, 5), torch.randn(2, 6), None))
    for bank in ("student_bank", "teacher_bank"):
        changed = (first[f"{bank}.memory"] != getattr(fresh, bank).memory).any(dim=1).nonzero().flatten()
        assert changed.tolist() == [0, 1, 2, 3, 4, 5], bank  # both ranks' samples
