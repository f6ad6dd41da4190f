"""A hub killed with ``kill -9`` leaves its embedded nx-27017 running: the next hub must start all the same,
without ever stopping a process that is not that store. Real processes throughout; every one started here is
stopped at the end of its test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import MongoClient

from fhir_hub.auth.dev_tokens import development_token
from fhir_hub.config import Settings
from fhir_hub.store.embedded import _LAUNCH, EmbeddedStore, EmbeddedStoreError, free_port
from fhir_hub.store.orphaned_store import is_store_command, read_pid, stop_orphaned_store

# A hub as far as the store is concerned: it takes the data directory's lock and starts nx-27017 exactly as
# ``fhir-hub serve`` does (through EmbeddedStore), then waits for its input to end.
_OWNER = """
import sys
from pathlib import Path
from fhir_hub.store.embedded import EmbeddedStore
store = EmbeddedStore(Path(sys.argv[1]))
store.start()
print(store.pid, store.uri, flush=True)
sys.stdin.read()
store.stop()
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan is not always reaped here, and still answers kill(pid, 0))."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _answers(uri: str) -> bool:
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        return client.admin.command("ping")["ok"] == 1


@pytest.fixture
def cleanup(tmp_path: Path) -> Iterator[list[int]]:
    """Pids of stores started (through a killed owner) by a test; any still running under tmp_path is killed."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(tmp_path).encode() in argv and _running(pid):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass
        finally:
            os.close(pidfd)


@pytest.fixture
def owner(tmp_path: Path, cleanup: list[int]) -> Iterator[tuple[subprocess.Popen[str], int, str]]:
    """A live owner of tmp_path/var and its store's pid and URI."""
    proc = subprocess.Popen([sys.executable, "-c", _OWNER, str(tmp_path / "var")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        store_pid, uri = proc.stdout.readline().split()
        cleanup.append(int(store_pid))
        yield proc, int(store_pid), uri
    finally:
        _end(proc)


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated live process whose pid a stale pid file may name."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    yield proc
    _end(proc)


def _end(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


def test_a_store_orphaned_by_kill_9_of_its_hub_is_stopped_and_a_new_one_serves(
        tmp_path: Path, owner: tuple[subprocess.Popen[str], int, str]) -> None:
    proc, orphan, uri = owner
    with MongoClient(uri) as client:
        client.crash.before.insert_one({"_id": "written before the crash"})
    proc.kill()  # kill -9 of the hub: the store, in a session of its own, survives it
    proc.wait()
    assert _running(orphan) and _answers(uri)
    with EmbeddedStore(tmp_path / "var") as new_uri:
        assert not _running(orphan)
        with MongoClient(new_uri) as client:
            assert client.crash.before.find_one({"_id": "written before the crash"}) is not None


def test_a_store_whose_hub_is_alive_is_refused_and_left_running(
        tmp_path: Path, owner: tuple[subprocess.Popen[str], int, str]) -> None:
    proc, store, uri = owner
    with pytest.raises(EmbeddedStoreError, match=rf"another hub \(pid {proc.pid}\) is already using the data dir"):
        EmbeddedStore(tmp_path / "var").start()
    assert _running(store) and _answers(uri)
    assert read_pid(tmp_path / "var" / "nx-27017.pid") == store  # its pid file untouched too
    assert proc.stdin is not None
    proc.stdin.close()  # the owner stops its store
    assert proc.wait() == 0


def test_a_stale_pid_file_naming_an_unrelated_process_does_not_kill_it(
        tmp_path: Path, bystander: subprocess.Popen[bytes]) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "nx-27017.pid").write_text(str(bystander.pid))
    with EmbeddedStore(tmp_path / "var") as uri:
        assert _answers(uri)
    assert bystander.poll() is None


def test_the_store_of_another_data_directory_is_not_killed(tmp_path: Path) -> None:
    """Its command line says nx-27017 too: only the paths tell it from this directory's store."""
    other = EmbeddedStore(tmp_path / "other")
    other_uri = other.start()
    try:
        assert other.pid is not None
        (tmp_path / "var").mkdir()
        (tmp_path / "var" / "nx-27017.pid").write_text(str(other.pid))
        with EmbeddedStore(tmp_path / "var") as uri:
            assert _answers(uri)
        assert _running(other.pid) and _answers(other_uri)
    finally:
        other.stop()


def test_a_store_launched_with_relative_paths_is_recognised_from_its_working_directory(tmp_path: Path) -> None:
    """Hubs before this fix launched the store with the data directory as given, ``var/store`` by default."""
    var = tmp_path / "var"
    argv = [sys.executable, "-c", _LAUNCH, "--data-dir", "var/store", "--host", "127.0.0.1", "-p", "1",
            "--log-file", "var/nx-27017.log", "--pid-file", "var/nx-27017.pid"]
    mine = {"launch": _LAUNCH, "store_dir": var / "store", "pid_file": var / "nx-27017.pid"}
    assert is_store_command(argv, tmp_path, **mine)  # type: ignore[arg-type]
    assert not is_store_command(argv, tmp_path / "elsewhere", **mine)  # type: ignore[arg-type]
    assert not is_store_command(argv, None, **mine)  # type: ignore[arg-type]
    assert not is_store_command([sys.executable, "-c", "print()", *argv[3:]], tmp_path, **mine)  # type: ignore[arg-type]
    assert not is_store_command([*argv, "--data-dir", "/elsewhere"], tmp_path, **mine)  # type: ignore[arg-type]


def _pid_file_contents(bystander_pid: int) -> st.SearchStrategy[bytes]:
    """Garbage, and pids that are live but not a store (this test, the bystander) or cannot exist: never the pid of
    a process someone else started, so that a mistake in the code under test could not hurt one."""
    impossible = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    pids = st.sampled_from([os.getpid(), bystander_pid]) | st.integers(min_value=impossible, max_value=2**40)
    decorated = st.tuples(pids, st.sampled_from(["{}", " {}\n", "+{}", "{}.0", "-{}", "0{}"])).map(
        lambda pair: pair[1].format(pair[0]).encode())
    return st.binary(max_size=80) | decorated | st.sampled_from([b"", b"0", b"-1", b"\xd9\xa5"])


def test_whatever_the_pid_file_says_nothing_but_the_store_is_stopped(
        tmp_path: Path, bystander: subprocess.Popen[bytes]) -> None:
    pid_file = tmp_path / "nx-27017.pid"

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(content=_pid_file_contents(bystander.pid))
    def check(content: bytes) -> None:
        pid_file.write_bytes(content)
        assert stop_orphaned_store(pid_file, launch=_LAUNCH, store_dir=tmp_path / "store") is None
        assert not pid_file.exists()  # else nx-27017 would take that process for a running store
        assert bystander.poll() is None

    check()


def _serves(proc: subprocess.Popen[bytes], port: int, token: str) -> bool:
    """Whether the hub ``proc`` came to answer a search with a token of its data directory's key (True), or
    exited first (False). The token proves the answer is this hub's, not that of some other server which took
    the port in the meantime; the deadline only keeps a hung start from hanging the suite."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/Patient?_count=1",
                                     headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                if response.status == 200:
                    return True
        except OSError:
            pass
        try:
            proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
    _end(proc)
    return False


@pytest.mark.server
def test_fhir_hub_serve_starts_again_after_kill_9(tmp_path: Path, cleanup: list[int]) -> None:
    data_dir = tmp_path / "var"
    env = {**os.environ, "FHIR_HUB_VALIDATION_PROCESSES": "0", "FHIR_HUB_LOG_LEVEL": "warning"}
    env.pop("FHIR_HUB_MONGODB_URI", None)
    token = development_token(Settings(data_dir=data_dir), role="system", facility="79001")
    hubs: list[subprocess.Popen[bytes]] = []

    def serve() -> subprocess.Popen[bytes]:
        """``fhir-hub serve`` until it answers; on a fresh port, again if another process took the port first."""
        for _attempt in range(3):
            port, log = free_port(), tmp_path / f"hub-{len(hubs)}.log"
            with log.open("wb") as output:  # a pipe nobody reads could fill up
                hubs.append(subprocess.Popen(
                    [sys.executable, "-m", "fhir_hub", "serve", "--no-demo", "--port", str(port), "--data-dir",
                     str(data_dir)], env=env, stdout=output, stderr=subprocess.STDOUT))
            if _serves(hubs[-1], port, token):
                store = read_pid(data_dir / "nx-27017.pid")
                assert store is not None
                cleanup.append(store)
                return hubs[-1]
            if "address already in use" not in log.read_text(errors="replace"):
                break
        pytest.fail(f"the hub exited with {hubs[-1].returncode}: {log.read_text(errors='replace')[-2000:]}")

    try:
        first = serve()
        orphan = cleanup[-1]
        first.kill()  # kill -9: the store, in a session of its own, survives its hub
        first.wait()
        assert _running(orphan)
        second = serve()  # answers a search: the data directory's store is serving again
        assert not _running(orphan)
        second.terminate()  # a clean stop (uvicorn exits with the signal once shut down) stops its store
        second.wait(timeout=60)
        assert not _running(cleanup[-1])
    finally:
        for hub in hubs:
            _end(hub)
