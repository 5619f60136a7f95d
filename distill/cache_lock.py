"""A lock on a cache entry that says who holds it and gives up after a timeout.

Sweep jobs and DDP ranks that need the same trained teacher (or teacher outputs) wait
for the one process that builds it. A waiting process says what it waits for and which
process holds the lock (its pid is written beside the lock file), and after
``DISTILL_LOCK_TIMEOUT`` seconds (default: 24 hours) it stops with one line instead of
waiting forever.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from distill.errors import DistillError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 24 * 3600


def lock_timeout() -> float:
    text = os.environ.get("DISTILL_LOCK_TIMEOUT", "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        raise DistillError(f"DISTILL_LOCK_TIMEOUT={text!r} must be a number of seconds") from None
    if value < 0:
        raise DistillError(f"DISTILL_LOCK_TIMEOUT={text!r} must be a number of seconds >= 0")
    return value


@contextmanager
def cache_lock(path: Path, what: str, timeout: float | None = None) -> Iterator[None]:
    """Hold ``<path>.lock`` while building ``what``; wait for another holder at most ``timeout`` seconds."""
    lock_path = Path(f"{path}.lock")
    owner_path = Path(f"{path}.lock.owner")
    timeout = lock_timeout() if timeout is None else timeout
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = _holder(owner_path)
        log.warning("Waiting for %s: lock %s held by %s (giving up after %g s)", what, lock_path, holder, timeout)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise DistillError(
                f"gave up after {timeout:g} s waiting for {what}: lock {lock_path} is held by {holder}; "
                "wait for that run to finish, or set DISTILL_LOCK_TIMEOUT=SECONDS to wait longer"
            ) from None
    try:
        owner_path.write_text(f"{os.getpid()} {socket.gethostname()}\n")
        yield
    finally:
        owner_path.unlink(missing_ok=True)
        lock.release()


def _holder(owner_path: Path) -> str:
    try:
        pid, _, host = owner_path.read_text().strip().partition(" ")
    except OSError:
        return "another process"
    return f"pid {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")
