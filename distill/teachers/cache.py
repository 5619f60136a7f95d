"""A directory of trained teachers, keyed by a hash of everything that determines them."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch import nn

from distill.cache_lock import cache_lock
from distill.errors import DistillError
from distill.io import atomic_torch_save, atomic_write_text


def spec_key(spec: Mapping[str, Any]) -> str:
    """A short, stable hash of a JSON-able description (model, data, schedule, seed, ...)."""
    text = json.dumps(spec, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class TeacherCache:
    """Stores teacher weights as ``<root>/<model>-<key>.pt`` with a JSON description beside each.

    Writes go to a temporary file that is then renamed, so a killed run never
    leaves a half-written teacher where a good one was; :meth:`locked` keeps
    two processes (sweep jobs) from training the same teacher at once.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DistillError(
                f"cannot create the cache directory {self.root} ({error.strerror}); "
                "set cache_dir=PATH to a writable directory"
            ) from None
        if not os.access(self.root, os.W_OK):
            raise DistillError(f"cache directory {self.root} is not writable; set cache_dir=PATH to a writable directory")

    def path(self, name: str, spec: Mapping[str, Any]) -> Path:
        return self.root / f"{name}-{spec_key(spec)}.pt"

    @contextmanager
    def locked(self, path: Path) -> Iterator[None]:
        with cache_lock(path, f"the cached model {path.name}"):
            yield

    def save(self, model: nn.Module, path: Path, spec: Mapping[str, Any]) -> None:
        atomic_torch_save(model.state_dict(), path)
        atomic_write_text(path.with_suffix(".json"), json.dumps(spec, indent=2, sort_keys=True, default=str))

