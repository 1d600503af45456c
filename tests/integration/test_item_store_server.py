"""The local PostgreSQL of `oxygen dev up --postgres` and the tests: started on loopback, reachable with the
DSN it writes, and stopped (or orphaned by a SIGKILLed harness) without leaving a process behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from oxygen.devcluster.postgres import LocalPostgres
from oxygen.devcluster.wait import wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture
def pgdir() -> Iterator[Path]:
    """Outside pytest's tmp tree (see the `postgres` fixture): the server user must reach it."""
    path = Path(tempfile.mkdtemp(prefix="oxygen-pg-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def family(pid: int) -> set[int]:
    """The process and its children (the postmaster's backends, checkpointer, walwriter…)."""
    found = {pid}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.add(int(entry.name))
    return found


def gone(pids: set[int]) -> bool:
    return not any(alive(p) for p in pids)


def test_a_server_on_loopback_stops_without_a_process_behind(pgdir: Path) -> None:
    server = LocalPostgres(workdir=pgdir / "pg").start()
    try:
        with psycopg.connect(server.dsn) as conn:
            row = conn.execute(
                "select inet_server_addr()::text, current_setting('data_directory')"
            ).fetchone()
        assert row is not None
        assert row[0].startswith("127.0.0.1")
        assert row[1] == str(pgdir / "pg" / "data")
        assert server.pid is not None
        pids = family(server.pid)
        assert len(pids) > 1 and alive(server.pid)  # a transient backend may come and go meanwhile
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(server.dsn.replace(server.password, "wrong"), connect_timeout=5).close()
    finally:
        server.stop()
    wait_for(lambda: gone(pids), timeout=15, what="postgres processes to exit")


def test_a_killed_harness_leaves_no_postgres_behind(pgdir: Path) -> None:
    script = (
        "import json, time\n"
        "from pathlib import Path\n"
        "from oxygen.devcluster.postgres import LocalPostgres\n"
        f"s = LocalPostgres(workdir=Path({str(pgdir / 'pg')!r})).start()\n"
        "print(json.dumps(s.pid), flush=True)\n"
        "time.sleep(600)\n"
    )
    harness = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert harness.stdout is not None
    pid = json.loads(harness.stdout.readline())
    pids = family(pid)
    assert len(pids) > 1 and alive(pid)
    harness.send_signal(signal.SIGKILL)
    harness.wait(timeout=30)
    wait_for(lambda: gone(pids), timeout=15, what="postgres processes to exit")


@pytest.mark.slow
def test_dev_up_postgres_writes_the_dsn_and_stops_it(pgdir: Path) -> None:
    workdir = pgdir / "cluster"
    up = subprocess.Popen(
        [sys.executable, "-m", "oxygen", "dev", "up", "--postgres", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    dsn_file = workdir / "postgres.dsn"
    try:
        wait_for(lambda: dsn_file.exists() and dsn_file.read_text().strip(), timeout=120, what="postgres.dsn")
        dsn = dsn_file.read_text().strip()
        assert oct(dsn_file.stat().st_mode & 0o777) == oct(0o600)
        with psycopg.connect(dsn) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        postmaster = int((workdir / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
        pids = family(postmaster)
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(timeout=60)
    wait_for(lambda: gone(pids), timeout=15, what="postgres processes to exit")
    assert not dsn_file.exists()
