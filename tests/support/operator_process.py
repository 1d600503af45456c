"""The operator as a real process against the test cluster (so tests can SIGKILL and restart it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from oxygen.devcluster.processes import die_with_parent


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        log_dir: Path,
        extra_env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        log_name: str = "operator.log",
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.extra_env = extra_env or {}
        self.extra_args = extra_args or []
        self.log_name = log_name
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.log_dir / self.log_name

    def start(self) -> OperatorProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1", **self.extra_env}
        with self.log.open("ab") as out:
            out.write(f"\n===== operator start #{self.starts + 1} =====\n".encode())
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "oxygen", "operator", "--log-level", "INFO", *self.extra_args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.starts += 1
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no operator log)"
