"""`oxygen dev up` / `oxygen demo` without the devcluster extra: one line saying what to install, and a
CLI whose import never loads the dev cluster (the clean-venv proof is tests/integration/test_install.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from oxygen.cli.main import main

PROBE = (
    "import sys, oxygen.cli.main\n"
    "print(sorted(m for m in sys.modules if m.startswith(('oxygen.devcluster', 'cryptography'))))\n"
)


def without_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "cryptography" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.parametrize("argv", [["dev", "up"], ["demo"]])
def test_without_the_extra_one_line_names_it(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    without_cryptography(monkeypatch)
    assert main([*argv, "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "pip install 'oxygen-operator[devcluster]'" in err
    assert list(tmp_path.iterdir()) == []


def test_importing_the_cli_loads_no_dev_cluster() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
