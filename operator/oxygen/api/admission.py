"""ValidatingAdmissionPolicies: an object can make the operator do no more than the user who writes it.

The operator reads Secrets, ConfigMaps and Workflows and creates pods on behalf of whoever wrote a Run
or a Workflow. Without a check at admission, a user who may only create Runs could have the operator
send a Secret she cannot read to her own server, or run a command in a pod although she may not create
pods (a confused deputy). These policies make the API server refuse such an object, naming it and the
permission its writer lacks. The checks run in the API server (CEL with the `authorizer` library): no
webhook server.

A guarded resource lists `Permission`s (get secrets, create pods, …), each with the `Reference`s that
need it: the parts of the object that make the operator use something (`uses`), and the part whose
change calls for a new check (`key`). On UPDATE only uses whose key is new are checked, so spec-less
writes (the operator's finalizers and annotations) and a user's pause, cancel or retry still pass;
status is a subresource these policies do not match. Providers are guarded the same way: a Run or a
Workflow step may name one only if its writer may `get` it, and a Provider may name a Secret only if
its writer may `get` that Secret.

An authorizer check is expensive for CEL's cost budget (about a third of one expression's limit), so
each named object is checked by its own validation, once per distinct name, and a write may bring at
most `MAX_NEW_NAMES` new names per permission.

`python -m oxygen.api.crdgen crds` writes them next to the CRDs (`kubectl apply -f crds/` installs
both); the chart carries the same objects behind `admissionPolicies.enabled`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from oxygen.api.admission_cel import Guarded, Permission, Reference, optional
from oxygen.api.common import API_VERSION, GROUP

# In crds/ (applied with the CRDs), and as a template of the chart (its crds/ holds CRDs only).
FILE_NAME = "admission-policies.yaml"
CHART_VALUE = "admissionPolicies.enabled"


def _secrets(*references: Reference) -> Permission:
    return Permission(id="secrets", resource="secrets", verb="get", noun="Secret", references=references)


def _pods(*references: Reference) -> Permission:
    return Permission(
        id="pods", resource="pods", verb="create", noun="runs a command in a pod", references=references
    )


def _providers(*references: Reference) -> Permission:
    """A Provider's endpoint, Secret and price are used for whoever names it: only those who may read it."""
    return Permission(
        id="providers", group=GROUP, resource="providers", verb="get", noun="Provider", references=references
    )


# A column run over a Table (spec.table with templated spec.inputs, no items of its own) reads its
# rows and writes its cells with the Table's DSN, an ingestion run with spec.table writes the rows it
# finds into the Table of that name: only for those who may read the Table.
TABLE_USE = (
    "(has({o}.spec) && has({o}.spec.table) && ((has({o}.spec.kind) && {o}.spec.kind == 'ingestion') "
    "|| (has({o}.spec.inputs) && !has({o}.spec.items) && !has({o}.spec.itemsFrom))) ? [{o}.spec.table] : [])"
)

# A producer's Secret goes to its URL: any change of the block holding both re-checks the Secret.
RUN = Guarded(
    kind="Run",
    plural="runs",
    permissions=(
        _secrets(
            Reference(
                uses=optional("{o}", "spec.producer.http") + ".filter(h, has(h.headersFrom))",
                field="'spec.producer.http.headersFrom.secretRef'",
                name="u.headersFrom.secretRef.name",
            ),
            Reference(
                uses=optional("{o}", "spec.ingestion") + ".filter(i, has(i.headersFrom))",
                field="'spec.ingestion.headersFrom.secretRef'",
                name="u.headersFrom.secretRef.name",
            ),
            # The operator runs the query with the Secret's credentials and makes the rows the run's
            # items: any change of the block holding both (a new query too) re-checks the Secret.
            Reference(
                uses=optional("{o}", "spec.itemsFrom.postgres"),
                field="'spec.itemsFrom.postgres.secretRef'",
                name="u.secretRef.name",
            ),
        ),
        Permission(
            id="configmaps",
            resource="configmaps",
            verb="get",
            noun="ConfigMap",
            references=(
                Reference(
                    uses=optional("{o}", "spec.itemsFrom.configMapKeyRef"),
                    field="'spec.itemsFrom.configMapKeyRef'",
                    key="u.name",
                    name="u.name",
                ),
            ),
        ),
        Permission(
            id="workflows",
            group=GROUP,
            resource="workflows",
            verb="get",
            noun="Workflow",
            references=(
                Reference(
                    uses=optional("{o}", "spec.workflowRef"),
                    field="'spec.workflowRef'",
                    key="u.name",
                    name="u.name",
                ),
            ),
        ),
        _pods(
            Reference(
                uses=optional("{o}", "spec.producer") + ".filter(p, has(p.command))",
                field="'spec.producer.command'",
            ),
        ),
        _providers(
            Reference(
                uses=optional("{o}", "spec.producer.providerRef"),
                field="'spec.producer.providerRef'",
                key="u.name",
                name="u.name",
            ),
        ),
        Permission(
            id="tables",
            group=GROUP,
            resource="tables",
            verb="get",
            noun="Table",
            references=(Reference(uses=TABLE_USE, field="'spec.table'", name="u"),),
        ),
    ),
)

# A Run's waterfall names up to 8 Providers: like a Workflow's steps, a policy of their own.
RUN_WATERFALL = Guarded(
    kind="Run",
    plural="runs",
    part="writer-waterfall",
    permissions=(
        _providers(
            Reference(
                uses="(has({o}.spec) && has({o}.spec.producer) && has({o}.spec.producer.waterfall) ? "
                "{o}.spec.producer.waterfall.filter(w, has(w.providerRef)) : [])",
                field="'spec.producer.waterfall.providerRef'",
                key="u.providerRef",
                name="u.providerRef.name",
                many=True,
            ),
        ),
    ),
)

WORKFLOW = Guarded(
    kind="Workflow",
    plural="workflows",
    permissions=(
        _secrets(
            Reference(
                uses="{o}.spec.steps.filter(s, has(s.producer.http) && has(s.producer.http.headersFrom))",
                field="'spec.steps[' + u.name + '].producer.http.headersFrom.secretRef'",
                key="u.producer",
                name="u.producer.http.headersFrom.secretRef.name",
                many=True,
            ),
            Reference(
                uses=optional("{o}", "spec.triggers.webhook.tokenSecretRef"),
                field="'spec.triggers.webhook.tokenSecretRef'",
                key="u.name",
                name="u.name",
            ),
        ),
        _pods(
            Reference(
                uses="{o}.spec.steps.filter(s, has(s.producer.command))",
                field="'spec.steps[' + u.name + '].producer.command'",
                key="u.producer",
                many=True,
            ),
        ),
    ),
)

# A Workflow's steps may each name a Provider: up to MAX_NEW_NAMES more checks, a policy of their own.
WORKFLOW_PROVIDERS = Guarded(
    kind="Workflow",
    plural="workflows",
    part="writer-providers",
    permissions=(
        _providers(
            Reference(
                uses="{o}.spec.steps.filter(s, has(s.producer.providerRef))",
                field="'spec.steps[' + u.name + '].producer.providerRef'",
                key="u.producer.providerRef",
                name="u.producer.providerRef.name",
                many=True,
            ),
        ),
    ),
)

# A Provider's Secret goes to its URL: any change of the block holding both re-checks the Secret.
PROVIDER = Guarded(
    kind="Provider",
    plural="providers",
    permissions=(
        _secrets(
            Reference(
                uses=optional("{o}", "spec.http") + ".filter(h, has(h.headersFrom))",
                field="'spec.http.headersFrom.secretRef'",
                name="u.headersFrom.secretRef.name",
            ),
        ),
    ),
)

# A Table's Secret holds its database's DSN: only for those who may read that Secret.
TABLE = Guarded(
    kind="Table",
    plural="tables",
    permissions=(
        _secrets(
            Reference(
                uses=optional("{o}", "spec.postgres.secretRef"),
                field="'spec.postgres.secretRef'",
                key="u.name",
                name="u.name",
            ),
        ),
    ),
)

GUARDED = (RUN, RUN_WATERFALL, WORKFLOW, WORKFLOW_PROVIDERS, PROVIDER, TABLE)

# A Run over a Table (or an ingestion into one) makes the operator use the Table's Secret: its DSN
# reads the rows and writes the cells. A policy cannot read the Table a Run names, but it can take the
# Tables as params: its binding selects every Table of the admitted Run's namespace (no
# paramRef.namespace), the API server evaluates the policy once per Table (no Table: allowed), and
# the evaluation for the Table the Run names requires `get` on that Table's Secret. Like the other
# checks, only a new use: on CREATE, or an UPDATE that makes the Run use a Table it did not before.
# failurePolicy Ignore: the API server resolves a CRD paramKind through its discovery cache, which
# lags (up to ~30 s after the CRDs are installed, and after it restarts: kubernetes#124237); until it
# has, the policy has a configuration error, which Fail would turn into refusing every Run of the
# cluster, Table or not. A check that evaluates to false refuses the Run either way.
TABLE_SECRETS_POLICY = f"runs.{GROUP}-writer-table-secrets"
_TABLE_SECRET = "variables.tableSecret[0]"


def table_secrets_policy() -> dict[str, Any]:
    table = "params.metadata.name"
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": TABLE_SECRETS_POLICY},
        "spec": {
            "failurePolicy": "Ignore",
            "paramKind": {"apiVersion": API_VERSION, "kind": TABLE.kind},
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": [RUN.plural],
                    }
                ]
            },
            "variables": [
                {
                    "name": "tableNew",
                    "expression": f"{table} in {TABLE_USE.format(o='object')} && (oldObject == null || "
                    f"!({table} in {TABLE_USE.format(o='oldObject')}))",
                },
                {
                    "name": "tableSecret",
                    "expression": optional("params", "spec.postgres.secretRef") + ".map(u, u.name)",
                },
            ],
            "validations": [
                {
                    "expression": "!variables.tableNew || size(variables.tableSecret) == 0 || "
                    "authorizer.group('').resource('secrets').namespace(request.namespace)"
                    f".name({_TABLE_SECRET}).check('get').allowed()",
                    "messageExpression": f"'Run ' + object.metadata.name + ' names Table ' + {table} + "
                    f"' (spec.table) whose Secret is ' + {_TABLE_SECRET} + ' (spec.postgres.secretRef), "
                    f"but ' + request.userInfo.username + ' may not get secrets ' + {_TABLE_SECRET} + "
                    "' in namespace ' + request.namespace",
                    "reason": "Forbidden",
                }
            ],
        },
    }


def table_secrets_binding() -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": TABLE_SECRETS_POLICY},
        "spec": {
            "policyName": TABLE_SECRETS_POLICY,
            # Every Table of the admitted Run's namespace; none found: nothing to check.
            "paramRef": {"selector": {}, "parameterNotFoundAction": "Allow"},
            "validationActions": ["Deny"],
        },
    }


def policy(guarded: Guarded) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": guarded.policy_name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": [guarded.plural],
                    }
                ]
            },
            "variables": [v for p in guarded.permissions for v in p.variables()],
            "validations": [v for p in guarded.permissions for v in p.validations(guarded.kind)],
        },
    }


def binding(guarded: Guarded) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": guarded.policy_name},
        "spec": {"policyName": guarded.policy_name, "validationActions": ["Deny"]},
    }


def documents() -> list[dict[str, Any]]:
    guarded = [doc for guarded in GUARDED for doc in (policy(guarded), binding(guarded))]
    return [*guarded, table_secrets_policy(), table_secrets_binding()]


class _Dumper(yaml.SafeDumper):
    """CEL stays readable: long expressions as literal blocks, not quoted and folded."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if len(value) > 60 else None)


_Dumper.add_representer(str, _str)


def render() -> str:
    header = "# Generated by `make crds` (oxygen/api/admission.py); do not edit.\n"
    return header + yaml.dump_all(documents(), Dumper=_Dumper, sort_keys=False, width=120)


def render_chart_template() -> str:
    """The same objects for the chart, behind its values toggle."""
    body = render()
    if "{{" in body:
        raise ValueError("a CEL expression would be read as a Helm template")
    return f"{{{{- if .Values.{CHART_VALUE} }}}}\n{body}{{{{- end }}}}\n"


if __name__ == "__main__":
    # `python -m oxygen.api.admission charts/oxygen-operator/templates` (make crds): the chart's copy.
    target = Path(sys.argv[1]) / FILE_NAME
    target.write_text(render_chart_template())
    print(target)
