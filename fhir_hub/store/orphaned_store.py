"""A store whose hub died (``kill -9``, out of memory) is found by its pid file and stopped before a new one starts.

The embedded nx-27017 runs in a session of its own, so that Ctrl-C reaches the hub first; it therefore outlives
a hub killed without a chance to stop it, keeps its pid file, and a new nx-27017 refuses to start while that
file names a live process. Who may stop it is decided by the data directory's lock: a live hub holds it for as
long as its store runs, so the caller, holding it, knows that no hub owns a store still serving the directory.

What the pid file names is trusted only once the process's command line shows nx-27017 launched for this very
store directory and pid file: the file outlives its process, and its number may since belong to anything. The
process is pinned with a pidfd before it is inspected, so the signal can only reach the process that was
inspected, never one that took its pid in the meantime. The store's durable state was clean after every crash
tried (SQLite in WAL mode), so stopping it and starting afresh loses nothing a commit acknowledged.
"""

from __future__ import annotations

import logging
import os
import re
import select
import signal
from pathlib import Path

log = logging.getLogger(__name__)

_PID = re.compile(rb"\s*([1-9][0-9]{0,9})\s*")
_MAX_PID = 2**31 - 1
_STOP_SECONDS = 10.0


class OrphanedStoreError(RuntimeError):
    """A store left behind could not be stopped safely; the message says what to do."""


def read_pid(pid_file: Path) -> int | None:
    """The pid nx-27017 wrote, or None for a missing file or one holding anything else."""
    try:
        with pid_file.open("rb") as handle:
            text = handle.read(64)
    except OSError:
        return None
    match = _PID.fullmatch(text)
    if match is None or int(match[1]) > _MAX_PID:
        return None
    return int(match[1])


def is_store_command(argv: list[str], cwd: Path | None, *, launch: str, store_dir: Path, pid_file: Path) -> bool:
    """Whether ``argv`` (run in ``cwd``) is nx-27017 started by ``EmbeddedStore`` for this store and pid file.

    Relative paths (written by hubs before the store was launched with absolute ones) are resolved against the
    process's working directory; without it they match nothing."""
    if len(argv) < 3 or argv[1:3] != ["-c", launch]:
        return False
    return (_path_option(argv, "--data-dir", cwd) == store_dir.resolve()
            and _path_option(argv, "--pid-file", cwd) == pid_file.resolve())


def _path_option(argv: list[str], name: str, cwd: Path | None) -> Path | None:
    values = [argv[i + 1] for i in range(len(argv) - 1) if argv[i] == name]
    values += [a.removeprefix(name + "=") for a in argv if a.startswith(name + "=")]
    if len(values) != 1:
        return None
    path = Path(values[0])
    if not path.is_absolute():
        if cwd is None:
            return None
        path = cwd / path
    return path.resolve()


def stop_orphaned_store(pid_file: Path, *, launch: str, store_dir: Path) -> int | None:
    """Stop the store ``pid_file`` names if it is this directory's nx-27017; the pid stopped, or None.

    Call only while holding the data directory's lock. Whatever else the file names is left alone; the file
    itself is removed either way, so that the new nx-27017 does not mistake that process for a running store
    (nor a zombie: a stopped orphan is not always reaped)."""
    pid = read_pid(pid_file)
    if pid is not None:
        stopped = _stop_if_store(pid, pid_file=pid_file, launch=launch, store_dir=store_dir)
    else:
        stopped = None
    pid_file.unlink(missing_ok=True)
    return stopped


def _stop_if_store(pid: int, *, pid_file: Path, launch: str, store_dir: Path) -> int | None:
    if not hasattr(os, "pidfd_open"):
        raise OrphanedStoreError(
            f"{pid_file} names process {pid}, and this system cannot check safely whether it is a store left "
            "by a hub that ended; stop that process if it is nx-27017, remove the file, and start again")
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    try:
        argv, cwd = _command(pid)
        if _exited(pidfd, 0):  # what was read may belong to a process that took the pid since
            return None
        if argv is None or not is_store_command(argv, cwd, launch=launch, store_dir=store_dir, pid_file=pid_file):
            log.warning("%s named process %d, which is not this data directory's nx-27017: left alone, file removed",
                        pid_file, pid)
            return None
        log.warning("stopping nx-27017 (pid %d) left running by a hub that ended without stopping it", pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                signal.pidfd_send_signal(pidfd, sig)
            except ProcessLookupError:
                return pid
            except PermissionError:
                raise OrphanedStoreError(f"nx-27017 (pid {pid}) left by an earlier hub belongs to another user; "
                                         "stop it and start again") from None
            if _exited(pidfd, _STOP_SECONDS):
                return pid
        raise OrphanedStoreError(f"nx-27017 (pid {pid}) left by an earlier hub does not stop; stop it and start again")
    finally:
        os.close(pidfd)


def _command(pid: int) -> tuple[list[str] | None, Path | None]:
    """The process's arguments and working directory, as far as this user may read them."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None, None
    argv = [os.fsdecode(part) for part in raw.split(b"\0")[:-1]]
    try:
        cwd: Path | None = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        cwd = None
    return argv, cwd


def _exited(pidfd: int, seconds: float) -> bool:
    """A pidfd becomes readable when its process ends (a zombie counts as ended)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(int(seconds * 1000)))
