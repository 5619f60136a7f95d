"""What a teacher or student config constructs: a model by name, its builder options, and where its weights come from.

``conf/teacher/*.yaml`` and ``conf/student/*.yaml`` name this class as their
``_target_``: the keys of the config are the arguments of its constructor, so the
keys that say where the weights come from (``weights``, ``checkpoint``, ``train``, ...)
are told apart from the builder's options by the signature, not by a list of names.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from distill.models.factory import build_model


class ModelSpec:
    """A model ``name`` with ``options`` for its family's builder (e.g. a Hugging Face ``path``).

    Args:
        name: any name :func:`~distill.models.build_model` knows.
        weights: pretrained weights (torchvision's enum name, e.g. ``"DEFAULT"``).
        checkpoint: a ``state_dict`` or Lightning checkpoint file with the weights.
        trusted_checkpoint: unpickle anything in ``checkpoint`` (only for trusted files).
        train: a teacher's own schedule (epochs, optimizer, lr_scheduler) when it is trained first.
        cache: a teacher's outputs are computed once and read from the cache in every epoch.
        dtype: keep a teacher's weights in this dtype (``bfloat16``, ``float16``).
        cache_dir: where a language-model teacher's top-k outputs are cached (``None``: under the run's ``cache_dir``).
        options: every other keyword goes to the family's builder.
    """

    def __init__(
        self,
        name: str,
        weights: str | None = None,
        checkpoint: str | None = None,
        trusted_checkpoint: bool = False,
        train: dict[str, Any] | None = None,
        cache: bool = False,
        dtype: str | None = None,
        cache_dir: str | None = None,
        **options: Any,
    ) -> None:
        self.name = name
        self.weights = weights
        self.checkpoint = checkpoint
        self.trusted_checkpoint = bool(trusted_checkpoint)
        self.train = train
        self.cache = bool(cache)
        self.dtype = dtype
        self.cache_dir = cache_dir
        self.options = options

    def build(self, num_classes: int) -> nn.Module:
        """The model with ``num_classes`` outputs and fresh weights (``weights``/``checkpoint`` are the caller's)."""
        return build_model(self.name, num_classes, **self.options)

    def __repr__(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"ModelSpec({self.name!r}{options})"
