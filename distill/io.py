"""Atomic file writes: a killed run never leaves a half-written file where a good one was.

Each write goes to a temporary file beside the target, named after the target, this host and
this process (``.<name>.<host>.<pid>.<random>.tmp``), which is then renamed into place. A
temporary file whose process is gone (killed during a save) is removed by the next write of
the same target. ``torch.save`` writes into an open file, so the temporary name never enters
the archive: identical objects give byte-identical files. A full disk is one line naming the
directory and the bytes needed (:class:`DiskFullError`).
"""

from __future__ import annotations

import errno
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from distill.errors import DistillError

#: a temporary file of another format (or host) is removed only when it is older than this
_STALE_AFTER_S = 24 * 3600


class DiskFullError(DistillError):
    """No space (or quota) left where a file had to be written."""

    def __init__(self, directory: Path, needed: int | None, free: int | None) -> None:
        self.directory = directory
        free_text = f", {_human(free)} free" if free is not None else ""
        needed_text = f"about {_human(needed)}" if needed is not None else "more space"
        super().__init__(
            f"no space left in {directory}: writing there needs {needed_text}{free_text}; "
            "free some space or point the run (hydra.run.dir) or the cache (cache_dir) at another disk"
        )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None], needed: int | None = None) -> Path:
    """Call ``write`` with an open temporary file beside ``path``, then rename it into place.

    ``needed`` is about how many bytes it writes, for the message when the disk is full.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _raise_if_full(error, path.parent, needed)
        raise
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_temp_prefix(path)}{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file private (0600); give it the usual permissions for new files
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as error:
        _raise_if_full(error, path.parent, needed)
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same directory, then rename it into place."""
    return _atomic_write(path, lambda handle: torch.save(obj, handle), _tensor_bytes(obj))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a temporary file in the same directory, then rename it into place."""
    data = text.encode()
    return _atomic_write(path, lambda handle: handle.write(data), len(data))


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove temporary files of ``path`` left by a killed save: this host's whose process is gone, or old ones."""
    removed = []
    mine = re.compile(re.escape(_temp_prefix(path)) + r"(\d+)\.[^.]+\.tmp$")
    for candidate in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        match = mine.match(candidate.name)
        try:
            stale = not _alive(int(match.group(1))) if match else time.time() - candidate.stat().st_mtime > _STALE_AFTER_S
            if stale and candidate.is_file():
                candidate.unlink()
                removed.append(candidate)
        except OSError:
            continue  # removed meanwhile, or not ours to remove
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{socket.gethostname().replace('.', '_')}."


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _raise_if_full(error: OSError, directory: Path, needed: int | None) -> None:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
        except OSError:
            free = None
        raise DiskFullError(directory, needed, free) from None


def _tensor_bytes(obj: Any) -> int:
    """About how many bytes ``torch.save(obj)`` writes: the tensors' data (the rest is small)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values()) + 64 * len(obj)
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj) + 16 * len(obj)
    return 64


def _human(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} bytes"
