"""The checked-in CRDs are exactly what the models generate (run `make crds` after a model change)."""

from __future__ import annotations

from pathlib import Path

from oxygen.api import admission
from oxygen.api.common import GROUP
from oxygen.api.crdgen import RESOURCES, crd, render

CRDS = Path(__file__).resolve().parents[2] / "crds"


def test_checked_in_crds_match_the_models() -> None:
    for resource in RESOURCES:
        path = CRDS / f"{GROUP}_{resource.plural}.yaml"
        assert path.exists(), f"{path} is missing: run `make crds`"
        assert path.read_text() == render(resource), f"{path.name} drifted from the models: run `make crds`"


def test_schemas_are_structural() -> None:
    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            assert "$ref" not in node, where
            assert "anyOf" not in node, where
            assert "title" not in node, where
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    for resource in RESOURCES:
        walk(crd(resource), resource.kind)


def test_checked_in_admission_policies_match_the_generator() -> None:
    path = CRDS / admission.FILE_NAME
    assert path.exists(), f"{path} is missing: run `make crds`"
    assert path.read_text() == admission.render(), f"{path.name} drifted from oxygen/api/admission.py"


def test_a_runshards_spec_is_immutable() -> None:
    """A worker may write its shards' status, never their spec (which names the run, hence the Job's
    ServiceAccount)."""
    (shard,) = [r for r in RESOURCES if r.kind == "RunShard"]
    spec = crd(shard)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert {"rule": "self == oldSelf", "message": "a RunShard's spec is immutable"} in spec[
        "x-kubernetes-validations"
    ]
