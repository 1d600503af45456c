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
    table_secrets_binding,
    table_secrets_policy,
)
from oxygen.api.admission_cel import MAX_NEW_NAMES

# One authorizer check costs about a third of an expression's CEL cost limit, and the checks of
# one request share the policy's runtime budget (measured on kube-apiserver 1.35: three checks in
# one expression exceed it).
MAX_CHECKS_PER_POLICY = 24


def test_every_authorizer_check_has_an_expression_of_its_own() -> None:
    for doc in documents():
        if doc["kind"] != "ValidatingAdmissionPolicy":
            continue
        spec = doc["spec"]
        for variable in spec["variables"]:
            assert "authorizer" not in variable["expression"], variable
        checks = 0
        for validation in spec["validations"]:
            assert validation["expression"].count("authorizer.") <= 1, validation
            checks += validation["expression"].count("authorizer.")
            # Messages cannot call the authorizer (nor, through them, use variables that do).
            assert "authorizer" not in validation["messageExpression"], validation
            assert validation["reason"] == "Forbidden"
        assert checks <= MAX_CHECKS_PER_POLICY, doc["metadata"]["name"]


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
    (rule,) = table_secrets_policy()["spec"]["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["runs"] and rule["operations"] == ["CREATE", "UPDATE"]
    # Every policy has its binding, of the same name.
    docs = documents()
    policies = [d["metadata"]["name"] for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    bindings = [d["spec"]["policyName"] for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert policies == bindings and len(set(policies)) == len(policies)


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


def test_a_run_uses_a_table_only_if_its_writer_may_get_the_tables_secret() -> None:
    """The Tables are the policy's params: the binding selects every Table of the Run's namespace
    (no paramRef.namespace), none is no reason to refuse, and only the evaluation for the Table the
    Run names (newly: on CREATE, or an UPDATE that makes it use that Table) asks the authorizer about
    the Secret that Table names."""
    spec = table_secrets_policy()["spec"]
    assert spec["paramKind"] == {"apiVersion": "oxygen.dev/v1alpha1", "kind": "Table"}
    # Not Fail: until the API server's discovery knows the Table kind, Fail would refuse every Run.
    assert spec["failurePolicy"] == "Ignore"
    assert table_secrets_binding()["spec"]["paramRef"] == {"selector": {}, "parameterNotFoundAction": "Allow"}
    assert table_secrets_binding()["spec"]["validationActions"] == ["Deny"]
    variables = {v["name"]: v["expression"] for v in spec["variables"]}
    # The Table the Run uses, as the Tables policy sees it (a column run over it, or an ingestion
    # into it; a run with items of its own only names it), and only when the old object did not.
    new = variables["tableNew"]
    assert new.startswith("params.metadata.name in (has(object.spec) && has(object.spec.table)")
    assert "oldObject == null || !(params.metadata.name in (has(oldObject.spec)" in new
    assert "object.spec.kind == 'ingestion'" in new and "!has(object.spec.items)" in new
    assert variables["tableSecret"].endswith("? [params.spec.postgres.secretRef] : []).map(u, u.name)")
    (validation,) = spec["validations"]
    expression = validation["expression"]
    # The cheap tests first: the authorizer is asked once per request, for the named Table only.
    assert expression.index("!variables.tableNew") < expression.index("authorizer.")
    assert expression.endswith(
        "authorizer.group('').resource('secrets').namespace(request.namespace)"
        ".name(variables.tableSecret[0]).check('get').allowed()"
    )
    message = validation["messageExpression"]
    assert "' names Table ' + params.metadata.name" in message
    assert "' may not get secrets ' + variables.tableSecret[0]" in message
    assert validation["reason"] == "Forbidden"
    assert [table_secrets_policy(), table_secrets_binding()] == documents()[-2:]
