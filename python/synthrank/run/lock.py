"""One writer per run folder: every command that writes into a run holds an exclusive lock on it.

Two writers on one folder would send every LLM request twice and append each line twice. The lock
is an `flock` on `RUN/.synthrank.lock`, so the kernel drops it when its holder dies, `kill -9`
included: a lock file left by a process that is gone is taken over, not obeyed. The file names the
holder (pid, command, start time) for the message a second writer gets. Readers (`status`,
`evaluate --output elsewhere`) take no lock. Under `torchrun` only rank 0 holds it, for all ranks.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from synthrank.errors import SynthrankError

try:
    import fcntl
except ImportError:  # Windows: no flock; a writer there is not guarded against a second one
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
LOCK_NAME = ".synthrank.lock"


class RunLockedError(SynthrankError):
    """Another live process writes into this run folder."""


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_holder(path: Path) -> dict[str, Any]:
    """What the lock file says about its holder; {} when it is empty or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    started = holder.get("started")
    since = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(started)) if started else ""
    return f"pid {holder.get('pid', '?')} (`{holder.get('command', '?')}`{since})"


class RunLock:
    """`with RunLock(run_dir):` - raises RunLockedError at once if another process holds it."""

    def __init__(self, run_dir: Path | str, command: str | None = None) -> None:
        self.root = Path(run_dir)
        self.path = self.root / LOCK_NAME
        self.command = command or " ".join(["synthrank", *sys.argv[1:]])
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if fcntl is None or int(os.environ.get("RANK", "0") or 0) != 0:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = read_holder(self.path)
            for _ in range(20):  # the holder writes its name just after taking the lock
                if holder:
                    break
                time.sleep(0.05)
                holder = read_holder(self.path)
            raise RunLockedError(
                f"{self.root}: another synthrank command writes into this run folder: {_describe(holder)}; "
                "wait for it to finish or stop it (two writers would send every LLM call twice)"
            ) from None
        previous = read_holder(self.path)
        pid = previous.get("pid")
        if isinstance(pid, int) and pid != os.getpid():
            state = (
                "still running, but it no longer holds the lock" if pid_alive(pid) else "no longer running"
            )
            log.warning("%s: taking over the lock left by %s, %s", self.root, _describe(previous), state)
        os.ftruncate(fd, 0)
        holder = {"pid": os.getpid(), "command": self.command, "started": time.time()}
        os.write(fd, json.dumps(holder).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)  # an empty file: nobody holds it
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
