"""Hugging Face causal language models, read offline or built from a config: ``teacher=hf_causal_lm``.

The model family ``hf_causal_lm`` gives, in order of preference: the model
saved in ``path`` (``AutoModelForCausalLM.from_pretrained``, local files
only; ``path`` may also be a ``.gguf`` file); a new model built from ``config_from``'s ``config.json`` with
``config`` overrides (fewer layers, a smaller width), optionally starting from
every k-th of that directory's layers and its embeddings (``init_layers``,
DistilBERT-style); or a new model built from ``config`` alone (it must then
name a ``model_type``, e.g. ``gpt2`` or ``llama``). The vocabulary size of a
new model is the data's (``num_classes``, the tokenizer's size).
Every model comes back in train mode: ``from_pretrained`` returns eval mode,
which Lightning would keep for the whole fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from distill.errors import DistillError, close_matches, first_line
from distill.models.factory import ModelFamily, register_family
from distill.models.gradient_checkpointing import enable_gradient_checkpointing
from distill.models.huggingface_init import copy_layers
from distill.models.lora import with_lora

FAMILY = "hf_causal_lm"


def build_hf_causal_lm(
    name: str,
    num_classes: int,
    weights: str | None = None,
    *,
    path: str | None = None,
    config_from: str | None = None,
    config: Mapping[str, Any] | None = None,
    init_layers: str | int | Sequence[int] | None = None,
    attn_implementation: str | None = None,
    gradient_checkpointing: bool = False,
    lora: Mapping[str, Any] | None = None,
) -> nn.Module:
    """A ``transformers`` causal LM in train mode (see the module's docstring for the three sources).

    Args:
        name: ``"hf_causal_lm"``.
        num_classes: the data's vocabulary size; a saved model must have at least
            this many output rows (more are padding rows, see :mod:`distill.lm.vocabulary`).
        weights: ``"DEFAULT"`` or ``None``: the weights in ``path``.
        path: a directory written by ``save_pretrained``.
        config_from: without ``path``: a directory whose ``config.json`` gives the architecture.
        config: overrides of that config, or (without either directory) the whole
            config of a new model, including ``model_type``; ``None`` values are ignored.
        init_layers: with ``config_from``: start from its embeddings and these layers
            (``[0, 2]``; an integer ``k``: every k-th layer 0, k, 2k, ...; ``"every_other"``: k = 2).
        attn_implementation: ``"eager"``, ``"sdpa"``, ...
        gradient_checkpointing: recompute each block in the backward pass instead of keeping its
            activations (a student's option, :mod:`distill.models.gradient_checkpointing`).
        lora: ``{"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": None}``: wrap the model in
            LoRA adapters, only they train (:func:`distill.models.lora.with_lora`); ``None`` or
            ``r: None``: no adapters, every weight trains.
    """
    overrides = {k: v for k, v in dict(config or {}).items() if v is not None}
    options = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if weights is not None and weights != "DEFAULT":
        raise DistillError(f"{FAMILY} takes its weights from path=DIR; weights='{weights}' is not understood (use DEFAULT or null)")
    if path:
        if init_layers is not None:
            raise DistillError(f"{FAMILY}: path={path} loads a whole saved model; init_layers needs config_from=DIR instead")
        model = load_causal_lm(path, overrides, options)
        check_output_rows(model, num_classes, path)
        return _for_training(model, gradient_checkpointing, lora)
    if weights:
        raise DistillError(f"{FAMILY}: weights={weights} needs path=DIR; a model built from a config starts from random weights")
    transformers = _transformers()
    if config_from:
        model_config = _apply_overrides(_read_config(config_from), overrides, config_from)
    else:
        model_config = _config_from_scratch(overrides)
    model_config.vocab_size = int(num_classes)
    model = transformers.AutoModelForCausalLM.from_config(model_config, **options)
    if init_layers is not None:
        if not config_from:
            raise DistillError(f"{FAMILY}: init_layers copies layers of the model in config_from=DIR; give config_from")
        source = load_causal_lm(config_from, {}, {})
        layers = source_layers(init_layers, _num_layers(model_config))
        copy_layers(model.base_model, source.base_model, layers, source_name=config_from)
        if not model.config.tie_word_embeddings:
            _copy_head(model, source, config_from)
    return _for_training(model, gradient_checkpointing, lora)


def _for_training(model: nn.Module, gradient_checkpointing: bool, lora: Mapping[str, Any] | None) -> nn.Module:
    """``model`` in train mode, with gradient checkpointing and LoRA adapters when asked for."""
    model.train()
    if gradient_checkpointing:
        enable_gradient_checkpointing(model)
    settings = {k: v for k, v in dict(lora or {}).items() if v is not None}
    if settings.get("r") is None:  # the config's defaults (alpha, dropout) without a rank: no adapters
        return model
    unknown = set(settings) - {"r", "alpha", "dropout", "target_modules"}
    if unknown:
        raise DistillError(f"unknown lora setting(s) {sorted(unknown)}; the settings are r, alpha, dropout, target_modules")
    return with_lora(model, **settings).train()


def source_layers(init_layers: str | int | Sequence[int], num_layers: int) -> list[int]:
    """The teacher layer each of ``num_layers`` student layers starts from (``k``: every k-th: 0, k, 2k, ...)."""
    if init_layers == "every_other":
        init_layers = 2
    if isinstance(init_layers, str) and init_layers.isdigit():
        init_layers = int(init_layers)
    if isinstance(init_layers, int):
        if init_layers < 1:
            raise DistillError(f"init_layers={init_layers}: every k-th layer needs k >= 1")
        return [i * init_layers for i in range(num_layers)]
    if isinstance(init_layers, str):
        raise DistillError(f"init_layers='{init_layers}' is not understood; give a list of layers, an integer k or every_other")
    return [int(i) for i in init_layers]


def load_causal_lm(directory: str, overrides: Mapping[str, Any], options: Mapping[str, Any]) -> nn.Module:
    """``AutoModelForCausalLM.from_pretrained(directory)`` offline, with config overrides; one-line errors.

    ``directory`` may also be a ``.gguf`` file (read by transformers with the ``gguf`` package, dequantised).
    """
    transformers = _transformers()
    folder, gguf = _gguf(directory)
    if gguf is None:
        folder = _check_directory(directory)
    model_config = _apply_overrides(_read_config(directory), overrides, directory)
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(folder), config=model_config, local_files_only=True, **gguf_option(gguf), **options
        )
    except ImportError as error:
        raise DistillError(f"cannot load {directory}: {first_line(error)}") from None
    except (OSError, ValueError, RuntimeError) as error:
        raise DistillError(f"cannot load the language model in {folder}: {first_line(error)}") from None
    return _without_gguf_quantizer(model) if gguf is not None else model


def _without_gguf_quantizer(model: nn.Module) -> nn.Module:
    """A model read dequantised from a GGUF file, as the plain model it is.

    transformers leaves its GGUF quantizer attached (``hf_quantizer``, ``config.quantization_config``)
    even when every weight was unpacked into a plain float tensor; ``save_pretrained`` then refuses
    the model ("quantized with gguf and is not serializable"), so a student started from a GGUF file
    could not be exported. The quantizer is removed, as transformers' own ``dequantize`` does, unless
    some layers kept their packed GGUF blocks (those are quantized for real).
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and not getattr(quantizer, "packed_modules", None):
        quantizer.remove_quantization_config(model)
    return model


def load_tokenizer(directory: str) -> Any:
    """The tokenizer saved in ``directory`` (offline), with a pad token (the EOS token when it has none)."""
    folder, gguf = _gguf(directory)
    if gguf is None:
        folder = _check_directory(directory, needs_config=False)
    try:
        tokenizer = _transformers().AutoTokenizer.from_pretrained(str(folder), local_files_only=True, **gguf_option(gguf))
    except (OSError, ValueError, KeyError) as error:
        raise DistillError(f"cannot load a tokenizer from {folder}: {first_line(error)}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def check_output_rows(model: nn.Module, num_classes: int, where: str) -> None:
    """A saved model must predict at least the data's ``num_classes`` tokens."""
    rows = model.get_output_embeddings().weight.shape[0]
    if rows < num_classes:
        raise DistillError(
            f"the language model in {where} predicts {rows} tokens but the data's tokenizer has {num_classes}; "
            "give the data the model's own tokenizer (data.tokenizer=DIR)"
        )


def _config_from_scratch(overrides: Mapping[str, Any]) -> Any:
    settings = dict(overrides)
    model_type = settings.pop("model_type", None)
    if not model_type:
        raise DistillError(
            f"{FAMILY} needs path=DIR (a saved model), config_from=DIR (a config.json), or config.model_type "
            "(e.g. gpt2 or llama) with the sizes of a new model"
        )
    transformers = _transformers()
    try:
        model_config = transformers.AutoConfig.for_model(str(model_type))
    except ValueError:
        known = list(transformers.CONFIG_MAPPING.keys())
        raise DistillError(f"unknown model_type '{model_type}'{close_matches(str(model_type), known)}") from None
    return _apply_overrides(model_config, settings, f"model_type {model_type}")


def _num_layers(model_config: Any) -> int:
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if getattr(model_config, key, None) is not None:
            return int(getattr(model_config, key))
    raise DistillError(f"cannot tell how many layers a {type(model_config).__name__} has; give init_layers as a list")


def _copy_head(model: nn.Module, source: nn.Module, source_name: str) -> None:
    head, source_head = model.get_output_embeddings(), source.get_output_embeddings()
    if head.weight.shape != source_head.weight.shape:
        raise DistillError(f"cannot start the student's output layer from {source_name}: another width or vocabulary")
    head.load_state_dict(source_head.state_dict())


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise DistillError(f"{FAMILY} needs the transformers package: pip install transformers") from None
    transformers.logging.set_verbosity_error()  # no "loading weights" bars in the run's log
    return transformers


def _check_directory(directory: str, needs_config: bool = True) -> Path:
    if str(directory) == "???":
        raise DistillError("path is not set: give teacher.path=DIR (or student.path=DIR), a directory written by save_pretrained")
    folder = Path(str(directory)).expanduser()
    if not folder.is_dir():
        raise DistillError(
            f"{directory} is not a local directory; distill loads language models offline: download the model "
            "first (e.g. `hf download NAME --local-dir DIR`) and give that directory"
        )
    if needs_config and not (folder / "config.json").is_file():
        raise DistillError(f"{directory} has no config.json; give a directory written by save_pretrained")
    return folder


def _gguf(path: str) -> tuple[Path, str | None]:
    """``(folder, file name)`` of a ``.gguf`` file, ``(path, None)`` otherwise."""
    file = Path(str(path)).expanduser()
    if file.suffix != ".gguf":
        return file, None
    if not file.is_file():
        raise DistillError(f"{path} does not exist; give the path of a local .gguf file")
    return file.parent, file.name


def gguf_option(gguf: str | None) -> dict[str, str]:
    return {"gguf_file": gguf} if gguf else {}


def _read_config(directory: str) -> Any:
    folder, gguf = _gguf(directory)
    if gguf is None:
        folder = _check_directory(directory)
    try:
        return _transformers().AutoConfig.from_pretrained(str(folder), local_files_only=True, **gguf_option(gguf))
    except (OSError, ValueError, KeyError, ImportError) as error:
        raise DistillError(f"cannot read the config of {directory}: {first_line(error)}") from None


def _apply_overrides(model_config: Any, overrides: Mapping[str, Any], where: str) -> Any:
    known = set(model_config.to_dict()) | set(getattr(model_config, "attribute_map", {}))
    for key, value in overrides.items():
        if key not in known:
            raise DistillError(
                f"config setting '{key}' is not a setting of {where}'s {type(model_config).__name__}{close_matches(key, known)}"
            )
        setattr(model_config, key, value)
    return model_config


register_family(ModelFamily(FAMILY, claims=lambda name: name == FAMILY, build=build_hf_causal_lm, names=lambda: (FAMILY,)))
