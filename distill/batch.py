"""Understanding the batch formats users' data loaders produce."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from distill.errors import DistillError, first_line

LABEL_KEY = "labels"
INDEX_KEY = "index"
#: cross-tokenizer batches: ``teacher_<name>`` entries are the teacher's inputs (``teacher_input_ids``, ...)
TEACHER_PREFIX = "teacher_"
#: cross-tokenizer batches: the aligned pairs of student and teacher positions (:mod:`distill.lm.alignment`)
ALIGNMENT_KEY = "alignment"


@dataclass
class Batch:
    """A batch split into model inputs, labels and sample indices.

    The models are called as ``model(*args, **kwargs)``.
    """

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    labels: Tensor | None = None
    index: Tensor | None = None
    #: the teacher's own keyword inputs when it reads another tokenization (``None``: the same inputs)
    teacher_kwargs: dict[str, Any] | None = None
    alignment: Tensor | None = None

    def for_teacher(self) -> Batch:
        """The batch as the teacher reads it: its own inputs where the batch carries them."""
        if self.teacher_kwargs is None:
            return self
        return Batch(kwargs=self.teacher_kwargs, labels=self.labels, index=self.index)

    def __len__(self) -> int:
        first = self.args[0] if self.args else next(iter(self.kwargs.values()))
        return len(first)


def split_batch(batch: Any) -> Batch:
    """Split a batch into inputs, labels and indices.

    Accepted forms: a tensor ``x``; a tuple/list ``(x,)``, ``(x, y)`` or
    ``(x, y, index)``; or a mapping, whose ``"labels"`` and ``"index"`` entries
    are taken out and whose other entries are passed to the models as keyword
    arguments (as Hugging Face models expect). A mapping of a cross-tokenizer batch
    also holds the teacher's inputs as ``teacher_<name>`` entries and an ``alignment``;
    they are taken out too (see :meth:`Batch.for_teacher`).
    """
    if isinstance(batch, Tensor):
        return Batch(args=(batch,))
    if isinstance(batch, Mapping):
        teacher = {k[len(TEACHER_PREFIX):]: v for k, v in batch.items() if str(k).startswith(TEACHER_PREFIX)}
        kwargs = {k: v for k, v in batch.items()
                  if k not in (LABEL_KEY, INDEX_KEY, ALIGNMENT_KEY) and not str(k).startswith(TEACHER_PREFIX)}
        if not kwargs:
            raise DistillError(
                f"batch mapping has only {sorted(batch)}: it needs at least one model input "
                "besides 'labels' and 'index'"
            )
        return Batch(kwargs=kwargs, labels=batch.get(LABEL_KEY), index=batch.get(INDEX_KEY),
                     teacher_kwargs=teacher or None, alignment=batch.get(ALIGNMENT_KEY))
    if isinstance(batch, (tuple, list)) and 1 <= len(batch) <= 3:
        labels = batch[1] if len(batch) >= 2 else None
        index = batch[2] if len(batch) == 3 else None
        return Batch(args=(batch[0],), labels=labels, index=index)
    raise DistillError(
        f"cannot read a batch of type {type(batch).__name__}"
        + (f" with {len(batch)} items" if isinstance(batch, (tuple, list)) else "")
        + "; yield x, (x,), (x, y), (x, y, index) or a dict with the model's inputs and optional 'labels'"
    )


def forward_logits(model: nn.Module, batch: Batch) -> Tensor:
    """Call ``model`` on the batch and return its logits.

    Understands a plain tensor, an output object with ``.logits`` (Hugging
    Face), a mapping with ``"logits"`` and a tuple whose first item is the logits.
    """
    return output_logits(model(*batch.args, **batch.kwargs))


def forward_logits_checked(model: nn.Module, batch: Batch, role: str) -> Tensor:
    """:func:`forward_logits` for a first batch: a failure becomes a clear error naming the input shapes."""
    try:
        return forward_logits(model, batch)
    except RuntimeError as error:  # on a first batch, most likely data that does not fit the model
        shapes = [tuple(a.shape) for a in (*batch.args, *batch.kwargs.values()) if isinstance(a, Tensor)]
        message = first_line(error)
        raise DistillError(
            f"the {role} cannot run on a batch of shape {', '.join(map(str, shapes))}: {message}; "
            "check that the data's channels and image size fit the model (e.g. data.channels=3)"
        ) from error


def output_logits(output: Any) -> Tensor:
    if isinstance(output, Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, Mapping):
        logits = output.get("logits")
    if logits is None and isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        logits = output[0]
    if not isinstance(logits, Tensor):
        raise DistillError(
            f"cannot find logits in a model output of type {type(output).__name__}; "
            "return a tensor, a tuple starting with the logits, or an object/dict with 'logits'"
        )
    return logits
