"""One ``serve`` per event spool, and per SQLite file: a second one started beside the first refuses
in one line instead of running side by side.

The spool (``EVENT_SPOOL_PATH``) belongs to one instance: two processes replaying one spool would
each take the other's events. SQLite takes one writer at a time, so two bots on one file wait on
each other's locks (and ``--workers`` is refused there for the same reason). Each is held with
``flock(LOCK_EX | LOCK_NB)`` on a ``<file>.lock`` beside it (the spool and the database themselves
are locked by SQLite with POSIX record locks, which ``flock`` does not touch on Linux), for the life
of the process: the kernel drops it when the process ends, however it ends, so a stale lock file
never blocks a restart. The file holds the holder's pid, for the message.
"""

import fcntl
import os
from pathlib import Path

_held: list[int] = []  # open descriptors: closing one would drop its lock


class AlreadyServing(Exception):
    """Another process holds the lock. ``str()``: one line saying what to do."""


def hold(path: Path, what_to_do: str) -> None:
    """Lock ``path`` (its ``.lock`` companion) for this process, or raise AlreadyServing:
    ``another platform-feedback serve (pid N) uses PATH: <what_to_do>``."""
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        pid = f" (pid {holder})" if holder.isdigit() else ""
        raise AlreadyServing(f"another `platform-feedback serve`{pid} uses {path}: {what_to_do}") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _held.append(fd)
