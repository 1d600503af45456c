"""Shared pieces of the resource models: camelCase aliases, exact decimal credits, conditions."""

from __future__ import annotations

import decimal
import urllib.parse
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel

GROUP = "oxygen.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# A declared credit amount (a cost per item or page, a grant): at most 18 integer digits and 9
# decimals, so 27 significant digits. A run of 10^7 items at that bound sums to < 10^25 with 9
# decimals (34 digits); CREDIT_PRECISION holds that and any account's totals exactly.
CREDIT_INTEGER_DIGITS = 18
CREDIT_DECIMALS = 9
CREDITS_PATTERN = rf"^[0-9]{{1,{CREDIT_INTEGER_DIGITS}}}(\.[0-9]{{1,{CREDIT_DECIMALS}}})?$"
# Totals the operator computes (status, a shard's captured credits): not bounded beyond digits.
CREDIT_TOTAL_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
CREDIT_PRECISION = 60

# Every thread's Decimal context starts as a copy of DefaultContext (the reconcile passes run in
# worker threads): raise the precision there, and in this thread, before any credit is summed.
decimal.DefaultContext.prec = CREDIT_PRECISION
decimal.getcontext().prec = max(decimal.getcontext().prec, CREDIT_PRECISION)

# Credits travel as decimal strings ("0.25"), never floats: sums must be exact.
Credits = Annotated[
    Decimal,
    Field(ge=0, max_digits=CREDIT_INTEGER_DIGITS + CREDIT_DECIMALS, decimal_places=CREDIT_DECIMALS),
    PlainSerializer(lambda d: credits_str(d), return_type=str),
    # A pattern, not a CEL rule: credits sit in lists without a length bound (grants, a shard's
    # items), where a rule's estimated cost exceeds the API server's budget. No maxLength either:
    # the API server then says "Too long" instead of the pattern a credit amount must match.
    WithJsonSchema({"type": "string", "pattern": CREDITS_PATTERN}),
]
CreditTotal = Annotated[
    Decimal,
    PlainSerializer(lambda d: credits_str(d), return_type=str),
    WithJsonSchema({"type": "string", "pattern": CREDIT_TOTAL_PATTERN}),
]

URL_MESSAGE = "must be an absolute http(s) URL with a host, e.g. https://api.example.com/v1"
PORT_MESSAGE = "the URL's port must be a number from 1 to 65535"
MAX_URL = 2048
# Marks the URL rules in a generated schema: crdgen keeps them where users write (Runs, Workflows)
# and drops them where only the operator does (a RunShard's per-item producers, whose unbounded
# list would multiply the rules' cost beyond the API server's budget).
URL_RULES_MARK = "x-oxygen-url-rules"


def http_url(value: str) -> str:
    """The same checks as the CRD's rules (CEL's url library), for models built in Python."""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(URL_MESSAGE)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(PORT_MESSAGE) from None
    if port == 0:
        raise ValueError(PORT_MESSAGE)
    return value


# A provider's URL: refused at apply when a worker could not call it (no host, a port out of range).
HttpUrl = Annotated[
    str,
    Field(min_length=1, max_length=MAX_URL),
    AfterValidator(http_url),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_URL,
            URL_RULES_MARK: True,
            "x-kubernetes-validations": [
                {
                    "rule": "isURL(self) && url(self).getScheme() in ['http', 'https'] "
                    "&& url(self).getHostname() != ''",
                    "message": URL_MESSAGE,
                },
                {
                    # A parsed URL's port is digits only (or empty): its length bounds int().
                    "rule": "!isURL(self) || url(self).getPort() == '' || "
                    "(url(self).getPort().size() <= 5 && int(url(self).getPort()) >= 1 "
                    "&& int(url(self).getPort()) <= 65535)",
                    "message": PORT_MESSAGE,
                },
            ],
        }
    ),
]

# Free-form JSON (item inputs and outputs): kept as is by the API server.
Json = Annotated[Any, WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True})]
# Item inputs: free-form, with a bound on their keys the API server checks. How deep they nest is
# bounded by the operator (oxygen/api/nesting.py): CRD rules cannot see into this data, and a
# ValidatingAdmissionPolicy that can costs the API server seconds per write on wide lists (measured).
MAX_INPUT_KEYS = 1024
Inputs = Annotated[
    dict[str, Any],
    Field(max_length=MAX_INPUT_KEYS),
    WithJsonSchema(
        {"type": "object", "maxProperties": MAX_INPUT_KEYS, "x-kubernetes-preserve-unknown-fields": True}
    ),
]
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
