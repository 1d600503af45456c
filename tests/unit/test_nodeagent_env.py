"""Pure helpers of the node agent: $(VAR) expansion and fieldRef resolution."""

import pytest

from oxygen.devcluster.nodeagent import expand, field_value

POD = {
    "metadata": {
        "name": "p",
        "namespace": "ns",
        "uid": "u-1",
        "annotations": {"batch.kubernetes.io/job-completion-index": "4"},
        "labels": {"app": "x"},
    },
    "spec": {"nodeName": "n", "serviceAccountName": "sa"},
}


def test_expand_substitutes_known_and_keeps_unknown_and_escaped() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)-$(C)", env) == "1-two-$(C)"
    assert expand("$$(A)", env) == "$(A)"


def test_field_refs_jobs_rely_on() -> None:
    assert field_value(POD, "metadata.annotations['batch.kubernetes.io/job-completion-index']") == "4"
    assert field_value(POD, "metadata.labels['app']") == "x"
    assert field_value(POD, "metadata.labels['missing']") == ""
    assert field_value(POD, "metadata.name") == "p"
    assert field_value(POD, "spec.serviceAccountName") == "sa"


def test_unknown_field_ref_is_an_error() -> None:
    with pytest.raises(ValueError, match="unsupported fieldRef"):
        field_value(POD, "status.phase")
