"""Hugging Face sequence classifiers from local directories: ``teacher=hf_sequence_classification teacher.path=DIR``.

Everything is read offline (``local_files_only=True``): a model is a directory
with a ``config.json`` and its weights, as ``save_pretrained`` writes it. A
model comes either from ``path`` (config and weights), or is built from the
``config.json`` in ``config_from`` with ``config`` overrides (a smaller
student), optionally starting from some of that directory's layers
(``init_layers``, DistilBERT-style). ``transformers`` is imported on first use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from distill.errors import DistillError, close_matches, first_line
from distill.models.factory import ModelFamily, register_family
from distill.models.huggingface_init import copy_layers, every_other
from distill.models.select_classes import SelectClasses

FAMILY = "hf_sequence_classification"


def build_hf_sequence_classifier(
    name: str,
    num_classes: int,
    weights: str | None = None,
    *,
    path: str | None = None,
    config_from: str | None = None,
    config: Mapping[str, Any] | None = None,
    init_layers: str | Sequence[int] | None = None,
    class_map: Sequence[int | str] | None = None,
    attn_implementation: str | None = None,
) -> nn.Module:
    """Build a ``transformers`` sequence classifier with ``num_classes`` outputs.

    Args:
        name: ``"hf_sequence_classification"``.
        num_classes: the data's number of classes.
        weights: ``"DEFAULT"``: use the weights in ``path`` as they are, which
            must then hold a trained classification head for these classes
            (``None`` also loads them; the difference is the check).
        path: a directory holding a saved model (``config.json`` and weights).
            A base model without a classification head gets a new one. Takes
            precedence over ``config_from``.
        config_from: without ``path``: a directory whose ``config.json`` gives
            the architecture; the model starts from random weights.
        config: overrides of the model's config (e.g. ``num_hidden_layers=3``);
            ``None`` values are ignored.
        init_layers: with ``config_from``: copy the embeddings and these encoder
            layers of the model saved in ``config_from`` (``[0, 2, 4]``: student
            layer ``i`` starts as layer ``init_layers[i]``; ``"every_other"``:
            layers 0, 2, 4, ...).
        class_map: with ``path`` holding a trained head for other labels: the
            model's output (index or label name) for each data class; the
            model is wrapped in :class:`~distill.models.select_classes.SelectClasses`.
        attn_implementation: ``"eager"``, ``"sdpa"``, ...; ``"eager"`` is
            needed for attention probabilities (``output_attentions``).
    """
    overrides = {k: v for k, v in dict(config or {}).items() if v is not None}
    load_options = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if weights is not None and weights != "DEFAULT":
        raise DistillError(
            f"{FAMILY} takes its weights from path=DIR; weights='{weights}' is not understood: "
            "give weights=DEFAULT to use the directory's weights as they are, or leave it unset"
        )
    if path:
        if init_layers is not None:
            raise DistillError(
                f"{FAMILY}: path={path} loads a whole saved model; init_layers starts a new one built from "
                "config_from: give one or the other (set path=null to build from config_from)"
            )
        # from_pretrained gives eval mode, which Lightning would keep for the whole fit: train what is trained
        return _load_saved(path, num_classes, bool(weights), overrides, class_map, load_options).train()
    if not config_from:
        raise DistillError(
            f"{FAMILY} needs path=DIR (a saved model) or config_from=DIR (a config.json to build a new model from)"
        )
    if weights:
        raise DistillError(f"{FAMILY}: weights={weights} needs path=DIR; a model built from config_from starts from random weights")
    if class_map is not None:
        raise DistillError(f"{FAMILY}: class_map needs path=DIR with a trained head; a new model has one output per data class")
    return _build_from_config(config_from, num_classes, overrides, init_layers, load_options).train()


def _load_saved(
    path: str, num_classes: int, as_saved: bool, overrides: Mapping[str, Any],
    class_map: Sequence[int | str] | None, load_options: Mapping[str, Any],
) -> nn.Module:
    """The model saved in ``path``; ``as_saved``: its head must be a trained one (weights=DEFAULT)."""
    model_config = _apply_overrides(_read_config(path, "path"), overrides, path)
    head = _has_classification_head(model_config)
    if as_saved and not head:
        raise DistillError(
            f"{path} holds no trained sequence-classification head (architectures: "
            f"{model_config.architectures}); leave weights unset so that distill fine-tunes it on the data "
            "first, or give a fine-tuned checkpoint"
        )
    if class_map is not None:
        if not head:
            raise DistillError(
                f"class_map selects outputs of a trained classification head, but {path} has none "
                f"(architectures: {model_config.architectures}); remove class_map"
            )
        indices = class_indices(class_map, model_config, num_classes, path)
        return SelectClasses(_load(path, model_config, load_options), indices)
    if head and model_config.num_labels != num_classes:
        raise DistillError(
            f"{path} classifies into {model_config.num_labels} labels ({_labels(model_config)}) but the data has "
            f"{num_classes} classes; give class_map=[...] with the model's output for each data class, "
            "or a base model to fine-tune"
        )
    model_config.num_labels = num_classes
    return _load(path, model_config, load_options)


def _build_from_config(
    config_from: str, num_classes: int, overrides: Mapping[str, Any],
    init_layers: str | Sequence[int] | None, load_options: Mapping[str, Any],
) -> nn.Module:
    """A new model from ``config_from``'s config.json, optionally starting from some of its saved layers."""
    model_config = _apply_overrides(_read_config(config_from, "config_from"), overrides, config_from)
    model_config.num_labels = num_classes
    model = _transformers().AutoModelForSequenceClassification.from_config(model_config, **load_options)
    if init_layers is not None:
        source = _load(config_from, None, {}, base=True)
        layers = every_other(model_config.num_hidden_layers) if init_layers == "every_other" else init_layers
        copy_layers(model.base_model, source, layers, source_name=config_from)
    return model


def class_indices(class_map: Sequence[int | str], model_config: Any, num_classes: int, path: str) -> list[int]:
    """``class_map`` as the model's output index for each data class, checked against the model's labels."""
    if isinstance(class_map, (str, bytes)) or len(class_map) != num_classes:
        raise DistillError(
            f"class_map must list one model output per data class ({num_classes}), got {class_map!r}"
        )
    label2id = {str(k): int(v) for k, v in (model_config.label2id or {}).items()}
    indices = []
    for entry in class_map:
        if isinstance(entry, str) and not entry.lstrip("-").isdigit():
            if entry not in label2id:
                raise DistillError(
                    f"class_map names label '{entry}' but {path} has labels {_labels(model_config)}"
                    f"{close_matches(entry, label2id)}"
                )
            entry = label2id[entry]
        index = int(entry)
        if not 0 <= index < model_config.num_labels:
            raise DistillError(
                f"class_map entry {index} is outside the {model_config.num_labels} outputs of {path} "
                f"({_labels(model_config)}); use 0..{model_config.num_labels - 1}"
            )
        indices.append(index)
    return indices


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:  # a core dependency, but keep the message clear for trimmed installs
        raise DistillError(f"{FAMILY} needs the transformers package: pip install transformers") from None
    return transformers


def _check_directory(directory: str, key: str) -> Path:
    if str(directory) == "???":  # Hydra's mark for a value the config leaves to the command line
        raise DistillError(f"{key} is not set: give teacher.{key}=DIR (or student.{key}=DIR), a directory written by save_pretrained")
    folder = Path(str(directory)).expanduser()
    if not folder.is_dir():
        raise DistillError(
            f"{key}={directory} is not a local directory; distill loads Hugging Face models offline: "
            "download the model first (e.g. `hf download NAME --local-dir DIR`) and give that directory"
        )
    if not (folder / "config.json").is_file():
        raise DistillError(
            f"{key}={directory} has no config.json; give a directory written by save_pretrained (config.json and weights)"
        )
    return folder


def _read_config(directory: str, key: str) -> Any:
    folder = _check_directory(directory, key)
    try:
        return _transformers().AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise DistillError(f"cannot read {folder / 'config.json'}: {first_line(error)}") from None


def _apply_overrides(model_config: Any, overrides: Mapping[str, Any], directory: str) -> Any:
    known = set(model_config.to_dict())
    for key, value in overrides.items():
        if key not in known:
            raise DistillError(
                f"config override '{key}' is not a setting of {directory}'s {type(model_config).__name__}"
                f"{close_matches(key, known)}"
            )
        setattr(model_config, key, value)
    return model_config


def _load(directory: str, model_config: Any, options: Mapping[str, Any], base: bool = False) -> nn.Module:
    """``from_pretrained`` offline: the sequence classifier, or with ``base`` the bare encoder."""
    transformers = _transformers()
    folder = _check_directory(directory, "path")
    auto = transformers.AutoModel if base else transformers.AutoModelForSequenceClassification
    extra = {"config": model_config} if model_config is not None else {}
    try:
        return auto.from_pretrained(str(folder), local_files_only=True, **extra, **options)
    except (OSError, ValueError, RuntimeError) as error:
        raise DistillError(f"cannot load the model in {folder}: {first_line(error)}") from None


def _has_classification_head(model_config: Any) -> bool:
    return any(str(a).endswith("ForSequenceClassification") for a in model_config.architectures or ())


def _labels(model_config: Any) -> str:
    return ", ".join(f"{i}={label}" for i, label in sorted((model_config.id2label or {}).items()))


register_family(ModelFamily(FAMILY, claims=lambda name: name == FAMILY, build=build_hf_sequence_classifier, names=lambda: (FAMILY,)))
