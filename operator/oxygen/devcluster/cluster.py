"""The control plane and one node agent, started and stopped together."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from oxygen.devcluster.controlplane import ControlPlane
from oxygen.devcluster.nodeagent import NodeAgent
from oxygen.devcluster.postgres import LocalPostgres, write_dsn


class LocalCluster:
    def __init__(self, workdir: Path | None = None, postgres: bool = False) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="oxygen-cluster-"))
        self.controlplane = ControlPlane(workdir=self.workdir / "controlplane")
        self.agent: NodeAgent | None = None
        # The item store beside the control plane (`oxygen dev up --postgres`): its DSN in postgres.dsn.
        self.postgres = LocalPostgres(workdir=self.workdir / "postgres") if postgres else None

    @classmethod
    def attach(cls, kubeconfig: Path) -> LocalCluster:
        """A cluster someone else runs (`oxygen dev up`), reached through its kubeconfig.

        stop() leaves its processes alone: it owns none of them.
        """
        kubeconfig = kubeconfig.resolve()
        attached = cls(workdir=kubeconfig.parent)
        attached.controlplane.kubeconfig = kubeconfig
        server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        attached.controlplane.api_port = int(urlsplit(server).port or 443)
        return attached

    @property
    def kubeconfig(self) -> Path:
        return self.controlplane.kubeconfig

    @property
    def postgres_dsn_file(self) -> Path:
        return self.workdir / "postgres.dsn"

    def start(self) -> LocalCluster:
        self.controlplane.start()
        try:
            self.agent = NodeAgent(self.kubeconfig, self.workdir / "node").start()
            if self.postgres is not None:
                self.postgres.start()
                write_dsn(self.workdir, self.postgres.dsn)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres_dsn_file.unlink(missing_ok=True)
        if self.agent is not None:
            self.agent.stop()
        self.controlplane.stop()
        if self._own_workdir and not os.environ.get("OXYGEN_KEEP_CLUSTER_DIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
