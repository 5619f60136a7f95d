"""Teacher and student vocabularies: the same tokens, or a one-line error.

Real model families pad their output layer to a round size (e.g. 152,064 rows
for a 151,646-token tokenizer in one model, 151,936 in its sibling). When the
tokenizers' token strings agree, the rows past the tokenizer are padding that
no text produces: both models' logits are cut to the shared size
(:class:`VocabularySlice`). Tokenizers that differ are an error.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from distill.errors import DistillError


class VocabularySlice(nn.Module):
    """``model`` with its logits cut to the first ``size`` tokens (its padding rows dropped)."""

    def __init__(self, model: nn.Module, size: int) -> None:
        super().__init__()
        self.model, self.size = model, int(size)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        output = self.model(*args, **kwargs)
        output.logits = output.logits[..., : self.size]
        return output


def output_rows(model: nn.Module) -> int:
    return int(model.get_output_embeddings().weight.shape[0])


def check_tokenizers_agree(teacher_tokenizer: Any, student_tokenizer: Any) -> int:
    """The tokenizers' shared size; a one-line error naming the first token they disagree on."""
    if teacher_tokenizer is student_tokenizer:
        return len(teacher_tokenizer)
    teacher_vocab, student_vocab = teacher_tokenizer.get_vocab(), student_tokenizer.get_vocab()
    if teacher_vocab != student_vocab:
        teacher_ids = {i: t for t, i in teacher_vocab.items()}
        student_ids = {i: t for t, i in student_vocab.items()}
        first = next((i for i in sorted(set(teacher_ids) | set(student_ids)) if teacher_ids.get(i) != student_ids.get(i)))
        raise DistillError(
            f"teacher and student have different vocabularies ({len(teacher_vocab)} vs {len(student_vocab)} tokens; "
            f"token {first} is {teacher_ids.get(first)!r} vs {student_ids.get(first)!r}); token-level distillation "
            "needs one tokenizer: build the student from the teacher's (student.config_from=teacher's directory)"
        )
    return len(teacher_vocab)


def reconcile_vocabularies(teacher: nn.Module, student: nn.Module, teacher_tokenizer: Any,
                           student_tokenizer: Any) -> tuple[nn.Module, nn.Module, str | None]:
    """``(teacher, student, note)`` with logits of the same size; ``note`` says what was cut (``None``: nothing).

    The models' output rows may differ only past the tokenizers' shared size (padding rows).
    """
    tokens = check_tokenizers_agree(teacher_tokenizer, student_tokenizer)
    rows = {"teacher": output_rows(teacher), "student": output_rows(student)}
    if rows["teacher"] == rows["student"]:
        return teacher, student, None
    for role, count in rows.items():
        if count < tokens:
            raise DistillError(f"the {role} predicts {count} tokens but its tokenizer has {tokens}; give matching model and tokenizer")
    shared = min(rows.values())
    note = (f"vocabularies reconciled: teacher {rows['teacher']} and student {rows['student']} output rows, "
            f"the same {tokens} tokens; logits cut to the shared {shared} (the rest are padding rows)")
    if rows["teacher"] > shared:
        teacher = VocabularySlice(teacher, shared)
    if rows["student"] > shared:
        student = VocabularySlice(student, shared)
    return teacher, student, note
