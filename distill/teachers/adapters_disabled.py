"""The teacher of LoRA self-distillation: the student's own base model with its adapters disabled.

One copy of the weights serves both models: the student is ``base + adapters`` (only the
adapters train), the teacher is ``base`` alone, run under peft's ``disable_adapter()``.
The teacher owns no parameters (so freezing it cannot freeze the adapters, and the module's
pair check sees nothing shared); its ``state_dict`` is the base weights, so the teacher's
hash still proves that training never changed them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from distill.errors import DistillError
from distill.models.lora import is_adapter_name, is_lora


class AdaptersDisabled(nn.Module):
    """The base model of a LoRA ``student``, run with its adapters disabled and in eval mode (no dropout).

    Args:
        student: a ``peft`` model (e.g. from :func:`distill.models.lora.with_lora`); kept by
            reference, outside this module's tree.
        name: ignored; the display name the command line's ``teacher=student_base`` config carries.
    """

    def __init__(self, student: nn.Module, name: str = "student_base") -> None:
        super().__init__()
        del name  # the config's display name (conf/teacher/student_base.yaml), not a setting
        if not is_lora(student):
            raise DistillError(
                f"the teacher 'student with adapters disabled' needs a LoRA student, got a {type(student).__name__}; "
                "give the student adapters (student.lora.r=8) or another teacher"
            )
        self.__dict__["student"] = student  # not a submodule: the teacher owns no parameters

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with self._base_model() as model:
            return model(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """The base model's ``generate`` (the report's sample continuations, sequence-level KD)."""
        with self._base_model() as model:
            return model.generate(*args, **kwargs)

    @property
    def config(self) -> Any:
        """The base model's configuration (its context length, vocabulary)."""
        return self.student.config

    @contextmanager
    def _base_model(self) -> Iterator[nn.Module]:
        model = self.student
        modes = [(m, m.training) for m in model.modules()]
        model.eval()  # a teacher runs without dropout, whatever mode the student is in
        try:
            with model.disable_adapter():
                yield model
        finally:
            for module, mode in modes:
                module.training = mode

    def base_parameters(self) -> dict[str, torch.Tensor]:
        """The base model's weights by their names before the adapters were added (the student's very tensors, not copies)."""
        return {base_name(n): p for n, p in self.student.named_parameters() if not is_adapter_name(n)}

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        """The base model's weights and buffers under their names before the adapters were added, so that
        :func:`~distill.models.weights_sha256` of this teacher is the hash of the model the student was made from."""
        return {base_name(k): v for k, v in self.student.state_dict(*args, **kwargs).items() if not is_adapter_name(k)}

    def to(self, *args: Any, **kwargs: Any) -> AdaptersDisabled:  # type: ignore[override]
        """Devices follow the student; another dtype (``teacher_dtype``) cannot: the weights are the student's."""
        dtype = torch._C._nn._parse_to(*args, **kwargs)[1]
        if dtype is not None:
            raise DistillError(
                f"the teacher is the LoRA student's own base weights, so it cannot be kept in {dtype} apart from the "
                "student; leave teacher_dtype (teacher.dtype) unset"
            )
        return super().to(*args, **kwargs)

    def get_output_embeddings(self) -> nn.Module:
        return self.student.get_output_embeddings()

    def extra_repr(self) -> str:
        return f"student={type(self.student.get_base_model()).__name__}"


def base_name(name: str) -> str:
    """A peft model's parameter name as the base model had it: ``base_model.model.h.0.c_attn.base_layer.weight``
    is ``h.0.c_attn.weight``."""
    return name.removeprefix("base_model.model.").replace(".base_layer.", ".")
