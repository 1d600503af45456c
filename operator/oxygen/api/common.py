"""Shared pieces of the resource models: camelCase aliases, exact decimal credits, conditions."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel

GROUP = "oxygen.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

CREDITS_PATTERN = r"^[0-9]+(\.[0-9]+)?$"

# Credits travel as decimal strings ("0.25"), never floats: sums must be exact.
Credits = Annotated[
    Decimal,
    PlainSerializer(lambda d: credits_str(d), return_type=str),
    WithJsonSchema({"type": "string", "pattern": CREDITS_PATTERN}),
]

# Free-form JSON (item inputs and outputs): kept as is by the API server.
Json = Annotated[Any, WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True})]
JsonObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]


def credits_str(value: Decimal) -> str:
    """Canonical text of a credit amount: no exponent, no trailing zeros ("1", "0.25")."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


class Model(BaseModel):
    """Base of every resource part: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def wire(self) -> dict[str, Any]:
        """What we send to the API server (aliases, no unset optionals)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Condition(Model):
    """A Kubernetes-convention status condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class ObjectMeta(Model):
    """The parts of metadata the operator reads."""

    name: str = ""
    namespace: str = ""
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
