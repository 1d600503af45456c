"""Which kubeconfig the operator uses: the flag, not whatever $KUBECONFIG said at import time."""

from __future__ import annotations

from pathlib import Path

import kopf
import pytest
import yaml

from oxygen.cli.main import build_parser
from oxygen.kube.client import load_api_client
from oxygen.kube.login import connection_from_kubeconfig, register_login


def kubeconfig(path: Path, server: str, token: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def test_the_flag_is_read_before_and_after_the_group_name(tmp_path: Path) -> None:
    parser = build_parser()
    assert str(parser.parse_args(["operator", "--kubeconfig", "/x"]).kubeconfig) == "/x"
    assert str(parser.parse_args(["--kubeconfig", "/y", "operator"]).kubeconfig) == "/y"
    assert not hasattr(parser.parse_args(["operator"]), "kubeconfig")


def test_our_client_reads_kubeconfig_when_it_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client library was imported long ago, with another $KUBECONFIG (or none).
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "b.yaml", "https://b.example:6443", "tok-b")))
    assert load_api_client().configuration.host == "https://b.example:6443"


def test_kopf_logs_in_with_the_given_file_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "a.yaml", "https://a.example:6443", "tok-a")))
    flag = kubeconfig(tmp_path / "b.yaml", "https://b.example:6443", "tok-b")
    info = connection_from_kubeconfig(flag)
    assert (info.server, info.scheme, info.token, info.insecure) == (
        "https://b.example:6443",
        "Bearer",
        "tok-b",
        True,
    )

    registry = kopf.OperatorRegistry()
    login = register_login(flag, registry=registry)
    assert login().server == "https://b.example:6443"
