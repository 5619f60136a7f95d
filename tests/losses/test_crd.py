"""CRD: embedding heads, memory banks, the NCE loss of both directions, its index checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from distill import DistillationModule
from distill.errors import DistillError
from distill.losses import CRD, CrossEntropy, StepOutputs
from distill.losses.functional import crd_nce_loss


def hand_outputs(student, teacher, index):
    return StepOutputs(
        student=torch.zeros(len(student), 2),
        teacher=torch.zeros(len(student), 2),
        index=index,
        student_features={"s": student},
        teacher_features={"t": teacher},
    )


def test_flags_layers_and_settings():
    term = CRD(num_samples=100, student_layer="avgpool", num_negatives=16384, weight=0.8)
    assert term.needs_build and term.needs_teacher and not term.needs_labels
    assert term.student_layers == ("avgpool",) and term.teacher_layers == ("avgpool",)
    assert term.num_negatives == 100  # capped at the number of samples
    assert "num_samples=100" in repr(term)
    with pytest.raises(DistillError, match="one layer"):
        CRD(num_samples=10, student_layer=["a", "b"])
    with pytest.raises(DistillError, match="num_samples"):
        CRD(num_samples=0)


def test_trains_heads_and_student_not_teacher(make_cnn, two_training_steps):
    module, _ = two_training_steps(CRD(num_samples=8, student_layer="4", num_negatives=5), make_cnn, "crd")
    term = module.loss_terms["crd"]
    assert set(dict(term.named_parameters())) == {"student_head.weight", "student_head.bias", "teacher_head.weight", "teacher_head.bias"}
    keys = set(module.state_dict())  # the banks and Z are buffers saved with the module
    assert {"loss_terms.crd.student_bank.memory", "loss_terms.crd.teacher_bank.memory", "loss_terms.crd.normalizers"} <= keys


def test_missing_index_says_how_to_get_it(make_cnn):
    module = DistillationModule(make_cnn(width=4), make_cnn(), {"crd": CRD(num_samples=8, student_layer="4")})
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
    module.build((x, y))
    with pytest.raises(DistillError, match="data.with_index=true"):
        module.training_step((x, y), 0)


def test_index_beyond_num_samples_is_an_error():
    term = CRD(num_samples=4, student_layer="s", teacher_layer="t", embed_dim=3)
    outputs = hand_outputs(torch.randn(2, 5), torch.randn(2, 6), torch.tensor([1, 4]))
    term.build(outputs)
    with pytest.raises(DistillError, match="num_samples"):
        term.compute(outputs)


def test_loss_value_and_bank_update_by_hand(monkeypatch):
    torch.manual_seed(0)
    n, dim, temperature = 6, 3, 0.5
    term = CRD(num_samples=n, student_layer="s", teacher_layer="t", embed_dim=dim, num_negatives=2, temperature=temperature)
    student, teacher, index = torch.randn(2, 5), torch.randn(2, 7), torch.tensor([4, 1])
    outputs = hand_outputs(student, teacher, index)
    term.build(outputs)
    negatives = torch.tensor([[0, 2], [5, 5]])
    monkeypatch.setattr(term.student_bank, "sample", lambda batch, num: negatives)
    bank_s, bank_t = term.student_bank.memory.clone(), term.teacher_bank.memory.clone()

    value = term.compute(outputs)

    f_s = F.linear(student, term.student_head.weight, term.student_head.bias)
    f_t = F.linear(teacher, term.teacher_head.weight, term.teacher_head.bias)
    f_s, f_t = f_s / f_s.norm(dim=1, keepdim=True), f_t / f_t.norm(dim=1, keepdim=True)
    rows = torch.cat([index[:, None], negatives], dim=1)
    # student anchor against the teacher bank, teacher anchor against the student bank
    scores_s = torch.stack([torch.exp(bank_t[rows[b]] @ f_s[b] / temperature) for b in range(2)])
    scores_t = torch.stack([torch.exp(bank_s[rows[b]] @ f_t[b] / temperature) for b in range(2)])
    z_s, z_t = scores_s.mean() * n, scores_t.mean() * n
    expected = crd_nce_loss(scores_s / z_s, n) + crd_nce_loss(scores_t / z_t, n)
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    assert term.normalizers.tolist() == pytest.approx([z_s.item(), z_t.item()], rel=1e-5)

    # momentum 0.5 on the batch's rows, the others untouched
    for b, row in enumerate(index.tolist()):
        for bank, old, new in ((term.student_bank, bank_s, f_s), (term.teacher_bank, bank_t, f_t)):
            mixed = 0.5 * old[row] + 0.5 * new[b].detach()
            torch.testing.assert_close(bank.memory[row], mixed / mixed.norm())
    for row in (0, 2, 3, 5):
        assert torch.equal(term.student_bank.memory[row], bank_s[row])
        assert torch.equal(term.teacher_bank.memory[row], bank_t[row])

    z = term.normalizers.clone()
    term.compute(hand_outputs(torch.randn(2, 5), torch.randn(2, 7), torch.tensor([0, 3])))
    assert torch.equal(term.normalizers, z)  # Z is set once, from the first training batch


def test_outside_training_needs_no_index_and_changes_nothing():
    term = CRD(num_samples=6, student_layer="s", teacher_layer="t", embed_dim=3, num_negatives=4)
    outputs = hand_outputs(torch.randn(3, 5), torch.randn(3, 7), None)
    term.build(outputs)
    term.eval()
    banks = term.student_bank.memory.clone(), term.teacher_bank.memory.clone()
    value = term.compute(outputs)
    assert torch.isfinite(value)
    assert torch.equal(term.student_bank.memory, banks[0]) and torch.equal(term.teacher_bank.memory, banks[1])
    assert (term.normalizers < 0).all()


def test_compute_before_build_is_a_clear_error():
    with pytest.raises(DistillError, match="build"):
        CRD(num_samples=4, student_layer="s", teacher_layer="t").compute(hand_outputs(torch.randn(2, 3), torch.randn(2, 3), torch.tensor([0, 1])))


def test_fits_under_a_trainer_with_validation(make_cnn, fast_trainer):
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(24, 1, 8, 8), torch.randint(0, 10, (24,)), torch.arange(24))
    term = CRD(num_samples=24, student_layer="4", embed_dim=8, num_negatives=10)
    module = DistillationModule(make_cnn(width=4), make_cnn(), {"crd": term, "ce": CrossEntropy()})
    fast_trainer(max_epochs=1).fit(module, DataLoader(data, batch_size=8), DataLoader(data, batch_size=8))
    assert (term.normalizers > 0).all()
    assert torch.allclose(term.student_bank.memory.norm(dim=1), torch.ones(24))  # every sample was seen and updated
