"""The module on partly-labelled and augmented batches: who sees which samples, checked by hand."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from distill import DistillationModule
from distill.augment import BatchAugment, Mixup
from distill.errors import DistillError
from distill.losses import KD, CrossEntropy, LossTerm, StepOutputs
from distill.partial_labels import outputs_for_term


class Linear(nn.Module):
    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(4, 3)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.fc(x)


def kd_by_hand(student, teacher, t):
    p_t = F.softmax(teacher / t, 1)
    return (t * t * (p_t * (p_t.log() - F.log_softmax(student / t, 1))).sum(1)).mean()


def module(**options):
    student, teacher = Linear(0), Linear(1)
    terms = {"kd": KD(temperature=2.0, weight=1.0), "ce": CrossEntropy(weight=1.0)}
    return DistillationModule(student, teacher, terms, **options), student, teacher


def test_kd_sees_every_sample_and_cross_entropy_only_the_labelled_ones():
    m, student, teacher = module()
    x, y = torch.randn(6, 4), torch.tensor([0, -100, 2, -100, 1, -100])
    total = m.training_step((x, y), 0)
    s, t = student.fc(x), teacher.fc(x)
    labelled = y != -100
    expected = kd_by_hand(s, t, 2.0) + F.cross_entropy(s[labelled], y[labelled])
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_batch_without_labels_trains_on_kd_alone_and_never_says_lower_the_learning_rate():
    m, student, teacher = module()
    x = torch.randn(5, 4)
    total = m.training_step((x, torch.full((5,), -100)), 0)
    assert torch.isfinite(total)
    assert total.item() == pytest.approx(kd_by_hand(student.fc(x), teacher.fc(x), 2.0).item(), rel=1e-5)


def test_label_terms_without_an_ignore_value_get_the_labelled_samples_only():
    class Hard(LossTerm):  # a label term that knows nothing of -100
        needs_labels = True

        def compute(self, outputs):
            return F.cross_entropy(outputs.student, outputs.labels)

    term = Hard()
    outputs = StepOutputs(student=torch.randn(4, 3), teacher=torch.randn(4, 3), labels=torch.tensor([1, -100, 0, -100]))
    seen = outputs_for_term(term, "hard", outputs)
    assert seen.labels.tolist() == [1, 0] and torch.equal(seen.student, outputs.student[[0, 2]])
    none = StepOutputs(student=torch.randn(2, 3), labels=torch.tensor([-100, -100]))
    assert outputs_for_term(term, "hard", none) is None  # sits the step out: contributes nothing


def test_teacher_and_student_see_the_same_augmented_view_and_cross_entropy_the_mixed_labels():
    m, student, teacher = module(batch_augment=Mixup(alpha=1.0, num_classes=3))
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    torch.manual_seed(5)
    lam = float(torch.distributions.Beta(1.0, 1.0).sample())
    perm = torch.randperm(6)
    torch.manual_seed(5)
    total = m.training_step((x, y), 0)
    view = lam * x + (1 - lam) * x[perm]
    assert torch.allclose(student.seen[-1], view) and torch.allclose(teacher.seen[-1], view)
    s, t = student.fc(view), teacher.fc(view)
    ce = lam * F.cross_entropy(s, y, reduction="none") + (1 - lam) * F.cross_entropy(s, y[perm], reduction="none")
    assert total.item() == pytest.approx((kd_by_hand(s, t, 2.0) + ce.mean()).item(), rel=1e-5)


def test_label_terms_undefined_on_mixed_labels_are_skipped_with_a_message():
    class HardOnly(CrossEntropy):
        accepts_soft_labels = False

    student, teacher = Linear(0), Linear(1)
    m = DistillationModule(student, teacher, {"kd": KD(), "hard": HardOnly()}, batch_augment=Mixup(num_classes=3))
    with pytest.warns(UserWarning, match="'hard'.*mixed labels"):
        m.training_step((torch.randn(4, 4), torch.tensor([0, 1, 2, 0])), 0)


def test_the_teacher_output_cache_and_batch_augmentation_are_refused_together():
    class Cache:
        pass

    with pytest.raises(DistillError, match="teacher.cache=true.*augment=null"):
        DistillationModule(Linear(0), Linear(1), KD(), teacher_outputs=Cache(), batch_augment=Mixup(num_classes=3))


def test_labels_minus_100_pass_the_first_batch_label_check_and_a_real_bad_label_still_fails():
    from distill.checks.first_batch import check_first_batch

    m, _, _ = module()
    check_first_batch(StepOutputs(student=torch.randn(2, 3), labels=torch.tensor([-100, 2])), m.loss_terms, 1)
    with pytest.raises(DistillError, match="labels range"):
        check_first_batch(StepOutputs(student=torch.randn(2, 3), labels=torch.tensor([-100, 3])), m.loss_terms, 1)


def test_a_teacher_trained_first_on_a_batch_without_labels_gets_a_zero_loss_not_nan():
    from distill.supervised import _task_loss

    logits = torch.randn(3, 4, requires_grad=True)
    value = _task_loss(logits, torch.full((3,), -100))
    assert value.item() == 0.0
    value.backward()
    assert torch.equal(logits.grad, torch.zeros(3, 4))
    labels = torch.tensor([1, -100, 2])
    assert _task_loss(logits, labels).item() == pytest.approx(F.cross_entropy(logits[[0, 2]], labels[[0, 2]]).item())


def test_a_batch_without_labels_and_only_label_terms_that_know_no_ignore_value_gives_an_exact_zero():
    # DKD reads labels and has no ignore value: it sits out a batch with no labelled sample; the step's total is
    # then 0 on the graph (zero gradients), not the int 0 that broke the non-finite check
    from distill.losses import DKD

    student, teacher = Linear(0), Linear(1)
    m = DistillationModule(student, teacher, {"dkd": DKD()})
    total = m.training_step((torch.randn(5, 4), torch.full((5,), -100)), 0)
    assert isinstance(total, torch.Tensor) and total.item() == 0.0 and total.requires_grad
    total.backward()
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in student.parameters())
    # with labelled samples DKD sees those only: the value a DKD of the labelled rows gives
    x, y = torch.randn(5, 4), torch.tensor([0, -100, 1, 2, -100])
    labelled = y != -100
    expected = DKD()(StepOutputs(student=student.fc(x)[labelled], teacher=teacher.fc(x)[labelled], labels=y[labelled]))
    assert m.training_step((x, y), 0).item() == pytest.approx(expected.item(), rel=1e-5)


class SignalNet(nn.Module):
    """Signals [N, 1, 8] -> a named hidden layer -> 3 classes; records the inputs it saw."""

    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(8, 6), nn.ReLU())
        self.fc = nn.Linear(6, 3)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.fc(self.hidden(x))


def test_a_feature_term_reads_both_models_features_on_the_same_cutmix_view():
    from distill.augment import CutMix
    from distill.augment.cutmix import cut_box, cutmix
    from distill.losses import PKT
    from distill.losses.functional import pkt_loss

    student, teacher = SignalNet(0), SignalNet(1)
    terms = {"kd": KD(temperature=2.0), "pkt": PKT(student_layer="hidden"), "ce": CrossEntropy()}
    m = DistillationModule(student, teacher, terms, batch_augment=CutMix(alpha=1.0, num_classes=3))
    x, y = torch.randn(6, 1, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    torch.manual_seed(3)  # CutMix's draws, in its order: lam, the segment's centre, the partners
    lam = float(torch.distributions.Beta(1.0, 1.0).sample())
    centre = tuple(torch.rand(1).tolist())
    perm = torch.randperm(6)
    view, kept = cutmix(x, cut_box((8,), lam, centre), perm)
    torch.manual_seed(3)
    total = m.training_step((x, y), 0)
    assert torch.equal(student.seen[-1], view) and torch.equal(teacher.seen[-1], view)
    s, t = student.fc(student.hidden(view)), teacher.fc(teacher.hidden(view))
    ce = kept * F.cross_entropy(s, y, reduction="none") + (1 - kept) * F.cross_entropy(s, y[perm], reduction="none")
    expected = kd_by_hand(s, t, 2.0) + pkt_loss(student.hidden(view), teacher.hidden(view)) + ce.mean()
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
