"""A real PostgreSQL on loopback beside the local control plane: the item store of tests and `oxygen dev up`.

Debian's binaries (`initdb`, `postgres`, `pg_ctl`), a data directory under the cluster's directory, a free
port on 127.0.0.1, password authentication for TCP (the superuser's password is generated per server, so
the scoped roles the operator makes for workers are really scoped), and `stop()` leaves no process
behind: the postmaster is this process's child (it dies with it, `die_with_parent`), stopped with a fast
shutdown. PostgreSQL refuses to run as root: as root, the server runs as the `postgres` system user and
its directory is handed to it.

Tuned for a throw-away developer server (no fsync, no full-page writes): never a production setting.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from oxygen.devcluster.processes import die_with_parent

SUPERUSER = "postgres"
DSN_FILE = "postgres.dsn"


class PostgresError(RuntimeError):
    pass


def bin_dir() -> Path:
    """The newest Debian PostgreSQL's bin directory (`/usr/lib/postgresql/<major>/bin`)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name)
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise PostgresError("PostgreSQL is not installed: apt-get install -y postgresql (make setup does)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalPostgres:
    """One local server. Use as a context manager, or call start()/stop()."""

    workdir: Path | None = None
    startup_timeout: float = 60.0
    port: int = 0
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    _popen: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _own_workdir: bool = field(default=False, init=False)

    @property
    def datadir(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "data"

    @property
    def log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "postgres.log"

    @property
    def dsn(self) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/postgres"

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> LocalPostgres:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="oxygen-pg-"))
            self._own_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        bins = bin_dir()
        try:
            self._initdb(bins)
            self.port = self.port or _free_port()
            self._start_server(bins)
            self._wait_ready(bins)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT: disconnect clients, checkpoint, exit), SIGKILL if it lingers."""
        popen, self._popen = self._popen, None
        if popen is not None and popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGINT)
            try:
                popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(timeout=10)
        if self._own_workdir and self.workdir is not None and not os.environ.get("OXYGEN_KEEP_CLUSTER_DIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- steps -----------------------------------------------------------------------------

    def _initdb(self, bins: Path) -> None:
        assert self.workdir is not None
        if (self.datadir / "PG_VERSION").exists():
            # A restart over an existing directory keeps its password (written at the first start).
            self.password = (self.workdir / ".pwfile").read_text().strip()
            return
        pwfile = self.workdir / ".pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        self.datadir.mkdir(mode=0o700, exist_ok=True)
        self._hand_over(pwfile, self.datadir)
        out = subprocess.run(
            [
                str(bins / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            preexec_fn=self._as_server_user(),
            check=False,
        )
        if out.returncode != 0:
            raise PostgresError(f"initdb failed: {(out.stderr or out.stdout).decode(errors='replace')}")

    def _start_server(self, bins: Path) -> None:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.datadir),
            "max_connections": "300",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "128MB",
        }
        argv = [str(bins / "postgres"), "-D", str(self.datadir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        with self.log.open("ab") as out:
            self._popen = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self._as_server_user(with_parent_death=True),
            )

    def _wait_ready(self, bins: Path) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self._popen is not None
            if self._popen.poll() is not None:
                raise PostgresError(f"postgres exited ({self._popen.returncode}):\n{self._tail()}")
            ready = subprocess.run(
                [str(bins / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"], check=False
            )
            if ready.returncode == 0:
                return
            time.sleep(0.2)
        raise PostgresError(f"postgres not ready after {self.startup_timeout}s:\n{self._tail()}")

    def _tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- running as a non-root user ---------------------------------------------------------

    def _server_user(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError as exc:
            raise PostgresError("PostgreSQL refuses root and there is no `postgres` user") from exc

    def _hand_over(self, *paths: Path) -> None:
        """As root: the server user owns its files and may traverse the directories above them."""
        user = self._server_user()
        if user is None:
            return
        for path in paths:
            os.chown(path, user.pw_uid, user.pw_gid)
        assert self.workdir is not None
        for parent in [self.workdir, *self.workdir.parents]:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)
        self.workdir.chmod(self.workdir.stat().st_mode | 0o001)
        log = self.log
        log.touch()
        os.chown(log, user.pw_uid, user.pw_gid)

    def _as_server_user(self, with_parent_death: bool = False) -> Callable[[], None]:
        user = self._server_user()

        def preexec() -> None:
            if user is not None:
                os.setgroups([])
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)
            if with_parent_death:
                die_with_parent()  # after setuid: a change of credentials clears the death signal

        return preexec


def write_dsn(workdir: Path, dsn: str) -> Path:
    """`<dir>/postgres.dsn`, readable by its owner only (it holds the superuser's password)."""
    path = workdir / DSN_FILE
    path.touch(mode=0o600)
    path.write_text(dsn + "\n")
    return path
