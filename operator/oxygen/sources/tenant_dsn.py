"""Connection strings that tenants give the operator (a Table's Secret, `itemsFrom.postgres`).

The operator connects with them on the tenant's behalf, from its own process: a DSN must carry its own
credentials to a TCP host, never borrow the operator's identity — its local socket (trusted by a
database beside it), its password file, service file or client certificate, or its PG* environment.
"""

from __future__ import annotations

import os

from psycopg.conninfo import conninfo_to_dict, make_conninfo

# Parameters that point libpq at files or settings of the process that connects.
REFUSED = ("passfile", "service", "servicefile", "sslkey", "sslcert", "sslpassword")


class TenantDsnError(ValueError):
    """The DSN is not one the operator uses for a tenant; the message never quotes the DSN."""


def tenant_conninfo(dsn: str) -> str:
    """`dsn` as a connection string that uses only what it says itself."""
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
    except Exception:
        # libpq quotes an unparsable string back, password included: never into a condition or Event.
        raise TenantDsnError("the connection string is not a valid DSN") from None
    refused = sorted(k for k in REFUSED if params.get(k))
    if refused:
        raise TenantDsnError(
            f"the connection string sets {', '.join(refused)}: refused for a tenant's database"
        )
    hosts = [h for h in (params.get("host") or "").split(",") if h]
    if not hosts and not params.get("hostaddr"):
        raise TenantDsnError("the connection string names no host: a tenant's database is reached over TCP")
    if any(h.startswith(("/", "@")) for h in hosts):
        raise TenantDsnError(
            "the connection string names a Unix socket: a tenant's database is reached over TCP"
        )
    # Set, so that libpq never falls back to the operator's environment or home directory for them.
    params.setdefault("password", "")
    params["passfile"] = os.devnull
    return make_conninfo(**params)
