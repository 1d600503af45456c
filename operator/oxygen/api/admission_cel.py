"""The CEL of the admission policies: what a guarded object references, and the authorizer check each
reference needs (one validation per distinct name, within the API server's CEL cost budget).

The rules themselves (which resource references what) are data in oxygen.api.admission.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oxygen.api.common import GROUP

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
