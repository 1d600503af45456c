"""Where the pinned control-plane binaries live, building them on first use."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "hack" / "controlplane" / "build.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")


class BinariesUnavailable(RuntimeError):
    pass


def controlplane_bin_dir() -> Path:
    """The directory holding etcd, kube-apiserver and kube-controller-manager.

    `OXYGEN_CONTROLPLANE_BIN` names a prepared directory; otherwise hack/controlplane/build.sh
    builds them from the pinned Go modules into ~/.cache/oxygen (a no-op when cached).
    """
    override = os.environ.get("OXYGEN_CONTROLPLANE_BIN")
    if override:
        path = Path(override)
    elif BUILD_SCRIPT.exists():
        done = subprocess.run(["bash", str(BUILD_SCRIPT)], check=False, capture_output=True, text=True)
        if done.returncode != 0:
            raise BinariesUnavailable(f"{BUILD_SCRIPT} failed:\n{done.stderr[-4000:]}")
        path = Path(done.stdout.strip().splitlines()[-1])
    else:
        raise BinariesUnavailable(
            "no control-plane binaries: set OXYGEN_CONTROLPLANE_BIN or run from a repository checkout"
        )
    missing = [b for b in BINARIES if not (path / b).is_file()]
    if missing:
        raise BinariesUnavailable(f"{path} lacks {', '.join(missing)}")
    return path
