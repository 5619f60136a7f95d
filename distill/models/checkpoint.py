"""Load model weights from a plain state_dict or a Lightning checkpoint, safely."""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from distill.errors import DistillError, first_line

log = logging.getLogger(__name__)

# prefixes under which distill's Lightning modules keep the model they train
_MODEL_PREFIXES = ("student.", "model.", "module.")


def read_checkpoint(path: str | os.PathLike, trusted: bool = False) -> Any:
    """Load ``path`` with ``torch.load(weights_only=True)``, turning every failure into one clear line.

    ``trusted=True`` unpickles whatever the file holds (``weights_only=False``): only
    for files from a source you trust, since unpickling can run arbitrary code.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(p.name for p in path.glob("*.*") if p.suffix in (".pt", ".pth", ".ckpt", ".bin", ".safetensors"))
        raise DistillError(
            f"checkpoint {path} is a directory, not a file; name the file in it"
            + (f" (it holds {', '.join(files[:5])}{' ...' if len(files) > 5 else ''})" if files else "")
        )
    if not path.is_file():
        raise DistillError(f"checkpoint not found: {path}; check the path (it is read relative to the launch directory)")
    if path.stat().st_size == 0:
        raise DistillError(f"checkpoint {path} is empty (0 bytes); the run that wrote it was probably killed, use another file")
    if trusted:
        log.warning("Loading %s with full unpickling (trusted checkpoint): it can run arbitrary code", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as error:
        if not trusted and _holds_objects(path, error):
            raise DistillError(
                f"checkpoint {path} holds objects other than tensors and plain containers, which "
                "distill does not unpickle because that can run arbitrary code; save model.state_dict() "
                "instead, or, only if you trust the file, set teacher.trusted_checkpoint=true"
            ) from None
        raise _unreadable(path, error) from None
    except Exception as error:  # noqa: BLE001 - a corrupt file makes torch.load raise almost any kind
        raise _unreadable(path, error) from None


def _unreadable(path: Path, error: BaseException) -> DistillError:
    return DistillError(
        f"checkpoint {path} cannot be read: it is truncated, corrupt or not a PyTorch file "
        f"({type(error).__name__}: {first_line(error)[:120]})"
    )


def _holds_objects(path: Path, error: pickle.UnpicklingError) -> bool:
    """Whether the weights-only unpickler refused a well-formed pickle (objects), not garbage."""
    if "Unsupported global" in str(error):
        return True
    with open(path, "rb") as handle:
        head = handle.read(2)
    # a plain pickle starts with the PROTO opcode and a protocol number; a torch zip archive parsed,
    # so its data.pkl was read and refused
    return (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or zipfile.is_zipfile(path)


def read_state_dict(path: str | os.PathLike, trusted: bool = False) -> dict[str, Tensor]:
    """Read a state_dict from ``path`` (safely, see :func:`read_checkpoint`).

    A Lightning checkpoint's ``state_dict`` entry is taken as is; use
    :func:`load_weights` to fit it to a model.
    """
    content = read_checkpoint(path, trusted)
    if isinstance(content, dict) and isinstance(content.get("state_dict"), dict):
        content = content["state_dict"]
    if not isinstance(content, dict) or not all(isinstance(v, Tensor) for v in content.values()):
        raise DistillError(
            f"checkpoint {path} is not a state_dict (a mapping of names to tensors) nor a Lightning "
            "checkpoint; save model.state_dict()"
        )
    return content


def load_weights(model: nn.Module, path: str | os.PathLike, trusted: bool = False) -> nn.Module:
    """Load the weights in ``path`` into ``model`` and return it.

    Accepts the model's own ``state_dict`` and Lightning checkpoints written by
    distill (whose keys start with ``student.`` or ``model.``).
    """
    state = _strip_prefix(read_state_dict(path, trusted), set(model.state_dict()))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if mismatched:
            problems.append(f"{len(mismatched)} shape mismatch(es), e.g. {mismatched[0]}")
        if missing:
            problems.append(f"{len(missing)} missing key(s), e.g. {missing[0]}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[0]}")
        raise DistillError(
            f"checkpoint {path} does not fit {type(model).__name__}: {'; '.join(problems)}; "
            "check the model name and num_classes it was trained with"
        )
    model.load_state_dict(state)
    return model


def _strip_prefix(state: dict[str, Tensor], wanted: set[str]) -> dict[str, Tensor]:
    if set(state) & wanted:
        return state
    for prefix in _MODEL_PREFIXES:
        stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if set(stripped) & wanted:
            return stripped
    return state

