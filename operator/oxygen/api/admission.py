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

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from oxygen.api.common import GROUP

# In crds/ (applied with the CRDs), and as a template of the chart (its crds/ holds CRDs only).
FILE_NAME = "admission-policies.yaml"
CHART_VALUE = "admissionPolicies.enabled"

# Distinct names one write may newly reference per permission (a Workflow's steps): each costs an
# authorizer check, and a policy's checks must stay within the API server's CEL budget per request.
MAX_NEW_NAMES = 16


def optional(obj: str, path: str) -> str:
    """CEL: a list holding the object at `path` below `obj` when every step exists, else empty."""
    steps = path.split(".")
    tests = [f"has({obj}.{'.'.join(steps[: i + 1])})" for i in range(len(steps))]
    return f"({' && '.join(tests)} ? [{obj}.{path}] : [])"


def _at(expr: str, element: str) -> str:
    """A CEL expression over the element `u`, applied to `element`."""
    return re.sub(r"\bu\b", element, expr)


@dataclass(frozen=True)
class Reference:
    """A part of an object that makes the operator use something on its writer's behalf.

    `uses` is CEL over `{o}` (the object or the old object) giving a list; `key`, `field` and `name`
    are CEL over one element `u`: what must change for a new check, where it is (for the message),
    and the name of the object it uses (None: a namespace-wide permission such as creating pods)."""

    uses: str
    field: str
    key: str = "u"
    name: str | None = None
    # True when the object may hold many uses (a Workflow's steps).
    many: bool = False


@dataclass(frozen=True)
class Permission:
    """What the writer must be allowed to do for every reference listed."""

    id: str
    resource: str
    verb: str
    # How the object is named in messages: "Secret"; for a namespace-wide permission, what the
    # references do: "runs a command in a pod".
    noun: str
    references: tuple[Reference, ...]
    group: str = ""

    @property
    def named(self) -> bool:
        return all(ref.name is not None for ref in self.references)

    def _new(self, i: int) -> str:
        return f"variables.{self.id}{i}New"

    def _allowed(self, name: str | None) -> str:
        check = f"authorizer.group('{self.group}').resource('{self.resource}').namespace(request.namespace)"
        if name is not None:
            check += f".name({name})"
        return f"{check}.check('{self.verb}').allowed()"

    def variables(self) -> list[dict[str, str]]:
        """Per reference `<id><i>New`: the uses whose key the old object did not have (all on CREATE);
        `<id>Names`: the distinct names those use, in order."""
        out = []
        for i, ref in enumerate(self.references):
            keys = "" if ref.key == "u" else f".map(u, {ref.key})"
            before = f"oldObject == null ? [] : {ref.uses.format(o='oldObject')}{keys}"
            out.append({"name": f"{self.id}{i}Before", "expression": before})
            new = f"{ref.uses.format(o='object')}.filter(u, !({ref.key} in variables.{self.id}{i}Before))"
            out.append({"name": f"{self.id}{i}New", "expression": new})
        if self.named:
            names = " + ".join(f"{self._new(i)}.map(u, {ref.name})" for i, ref in enumerate(self.references))
            out.append({"name": f"{self.id}All", "expression": names})
            # Each name once: one authorizer check per distinct name.
            every = f"variables.{self.id}All"
            distinct = f"{every}.transformList(i, n, {every}.indexOf(n) == i, n)"
            out.append({"name": f"{self.id}Names", "expression": distinct})
        return out

    def _fields(self, name: str | None) -> str:
        """CEL: the fields of the new uses (of `name`), comma-separated."""
        parts = []
        for i, ref in enumerate(self.references):
            new = self._new(i)
            if name is not None:
                new += f".filter(u, {ref.name} == {name})"
            parts.append(f"{new}.map(u, {ref.field})")
        return f"({' + '.join(parts)}).join(', ')"

    def validations(self, kind: str) -> list[dict[str, str]]:
        who = f"'{kind} ' + object.metadata.name + ' "
        why = " + '), but ' + request.userInfo.username + ' may not "
        where = " + ' in namespace ' + request.namespace"
        if not self.named:
            any_new = " || ".join(f"size({self._new(i)}) > 0" for i in range(len(self.references)))
            return [
                {
                    "expression": f"!({any_new}) || {self._allowed(None)}",
                    "messageExpression": f"{who}{self.noun} (' + {self._fields(None)}{why}"
                    f"{self.verb} {self.resource}'{where}",
                    "reason": "Forbidden",
                }
            ]
        names = f"variables.{self.id}Names"
        slots = MAX_NEW_NAMES if any(ref.many for ref in self.references) else len(self.references)
        out = []
        for k in range(slots):
            name = f"{names}[{k}]"
            out.append(
                {
                    "expression": f"size({names}) <= {k} || {self._allowed(name)}",
                    "messageExpression": f"{who}names {self.noun} ' + {name} + ' (' + {self._fields(name)}"
                    f"{why}{self.verb} {self.resource} ' + {name}{where}",
                    "reason": "Forbidden",
                }
            )
        if slots == MAX_NEW_NAMES:
            out.append(
                {
                    "expression": f"size({names}) <= {MAX_NEW_NAMES}",
                    "messageExpression": f"{who}names ' + string(size({names})) + ' {self.noun}s not "
                    f"checked before (' + {names}.join(', ') + '): write at most {MAX_NEW_NAMES} new ones "
                    "at a time, each is checked against what ' + request.userInfo.username + ' may "
                    f"{self.verb}'",
                    "reason": "Forbidden",
                }
            )
        return out


@dataclass(frozen=True)
class Guarded:
    kind: str
    plural: str
    permissions: tuple[Permission, ...]
    # One policy per Guarded; a kind whose checks exceed one policy's CEL budget gets a second part.
    part: str = "writer-permissions"

    @property
    def policy_name(self) -> str:
        return f"{self.plural}.{GROUP}-{self.part}"


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

GUARDED = (RUN, RUN_WATERFALL, WORKFLOW, WORKFLOW_PROVIDERS, PROVIDER)


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
    return [doc for guarded in GUARDED for doc in (policy(guarded), binding(guarded))]


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
