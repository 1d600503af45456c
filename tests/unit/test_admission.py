"""The admission policies' shape: what the API server's CEL budget and message rules require.

Their behaviour is proven against the real API server in tests/integration/test_tenancy_admission.py;
these catch, without a cluster, a change that would make them fail at runtime for everyone.
"""

from __future__ import annotations

import re

from oxygen.api.admission import (
    GUARDED,
    PROVIDER,
    RUN,
    WORKFLOW,
    WORKFLOW_PROVIDERS,
    documents,
    policy,
)
from oxygen.api.admission_cel import MAX_NEW_NAMES

# One authorizer check costs about a third of an expression's CEL cost limit, and the checks of
# one request share the policy's runtime budget (measured on kube-apiserver 1.35: three checks in
# one expression exceed it).
MAX_CHECKS_PER_POLICY = 24


def test_every_authorizer_check_has_an_expression_of_its_own() -> None:
    for guarded in GUARDED:
        spec = policy(guarded)["spec"]
        for variable in spec["variables"]:
            assert "authorizer" not in variable["expression"], variable
        checks = 0
        for validation in spec["validations"]:
            assert validation["expression"].count("authorizer.") <= 1, validation
            checks += validation["expression"].count("authorizer.")
            # Messages cannot call the authorizer (nor, through them, use variables that do).
            assert "authorizer" not in validation["messageExpression"], validation
            assert validation["reason"] == "Forbidden"
        assert checks <= MAX_CHECKS_PER_POLICY, guarded.kind


def test_a_workflow_may_name_many_secrets_and_each_distinct_name_is_checked_once() -> None:
    validations = policy(WORKFLOW)["spec"]["validations"]
    secret_checks = [v for v in validations if "resource('secrets')" in v["expression"]]
    assert len(secret_checks) == MAX_NEW_NAMES
    slots = [re.findall(r"secretsNames\[(\d+)\]", v["expression"]) for v in secret_checks]
    assert slots == [[str(k)] for k in range(MAX_NEW_NAMES)]
    assert any(v["expression"] == f"size(variables.secretsNames) <= {MAX_NEW_NAMES}" for v in validations)


def test_runs_and_workflows_are_matched_on_create_and_update_only() -> None:
    kinds = {d["kind"] for d in documents()}
    assert kinds == {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    for guarded in GUARDED:
        (rule,) = policy(guarded)["spec"]["matchConstraints"]["resourceRules"]
        # The plural alone: status writes (a subresource) are never matched.
        assert rule["resources"] == [guarded.plural]
        assert rule["operations"] == ["CREATE", "UPDATE"]
        assert policy(guarded)["spec"]["failurePolicy"] == "Fail"


def test_providers_are_named_only_by_those_who_may_get_them() -> None:
    """A Run names one Provider; a Workflow's steps up to MAX_NEW_NAMES new ones per write, in a
    policy of their own (the secrets' checks already use most of the Workflow policy's budget); a
    Provider's Secret is checked like a Run's."""
    run_checks = [v for v in policy(RUN)["spec"]["validations"] if "resource('providers')" in v["expression"]]
    assert len(run_checks) == 1
    assert "group('oxygen.dev')" in run_checks[0]["expression"]
    assert "check('get')" in run_checks[0]["expression"]
    steps = policy(WORKFLOW_PROVIDERS)["spec"]["validations"]
    assert len([v for v in steps if "resource('providers')" in v["expression"]]) == MAX_NEW_NAMES
    names = {policy(g)["metadata"]["name"] for g in GUARDED}
    assert len(names) == len(GUARDED)
    validations = policy(PROVIDER)["spec"]["validations"]
    (secret,) = [v for v in validations if "resource('secrets')" in v["expression"]]
    assert "'spec.http.headersFrom.secretRef'" in secret["messageExpression"]
