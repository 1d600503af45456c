"""The package as shipped: the wheel installed without extras (what the image does) starts its commands.

The image runs `oxygen operator` and every worker pod `oxygen worker`; neither may need a dev extra.
Dependencies come from the package index, so this is slow (marked) but needs no cluster.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

# What a plain install must not load when the CLI starts: the local control plane and its dev extra.
IMPORT_PROBE = (
    "import sys, oxygen.cli.main\n"
    "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'cryptography'"
    " or m.startswith('oxygen.devcluster'))\n"
    "print(','.join(loaded))\n"
)


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=540)


@pytest.fixture(scope="module")
def plain_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel and its runtime dependencies only; returns its bin directory."""
    root = tmp_path_factory.mktemp("install")
    built = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", root / "dist", REPO)
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("oxygen_operator-*.whl")
    venv = run(sys.executable, "-m", "venv", root / "venv")
    assert venv.returncode == 0, venv.stderr
    bin_dir = root / "venv" / "bin"
    installed = run(bin_dir / "pip", "install", "-q", wheel)
    assert installed.returncode == 0, installed.stderr
    return bin_dir


@pytest.mark.parametrize("argv", [["--help"], ["operator", "--help"], ["worker", "--help"]])
def test_runtime_commands_start_without_extras(plain_install: Path, argv: list[str]) -> None:
    result = run(plain_install / "oxygen", *argv)
    assert result.returncode == 0, result.stderr
    assert "usage: oxygen" in result.stdout


def test_the_cli_does_not_load_the_dev_cluster(plain_install: Path) -> None:
    result = run(plain_install / "python", "-c", IMPORT_PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_dev_up_without_the_extra_says_what_to_install(plain_install: Path, tmp_path: Path) -> None:
    result = run(plain_install / "oxygen", "dev", "up", "--dir", tmp_path)
    assert result.returncode == 1
    assert "pip install 'oxygen-operator[devcluster]'" in result.stderr
    assert "Traceback" not in result.stderr
