"""The checked-in CRDs are exactly what the models generate (run `make crds` after a model change)."""

from __future__ import annotations

from pathlib import Path

from oxygen.api.common import GROUP
from oxygen.api.crdgen import RESOURCES, render

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

    from oxygen.api.crdgen import crd

    for resource in RESOURCES:
        walk(crd(resource), resource.kind)
