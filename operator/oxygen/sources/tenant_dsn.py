"""Connection strings that tenants give the operator (a Table's Secret, `itemsFrom.postgres`).

The operator connects with them on the tenant's behalf, from its own process: a DSN must carry its own
credentials to a TCP host, never borrow the operator's identity — its local socket (trusted by a
database beside it), its password file, service file or client certificate, or its PG* environment.
"""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

# No such file: libpq then sends no client certificate (~/.postgresql/postgresql.crt is the operator's).
NO_FILE = "/nonexistent/oxygen-tenant-dsn"
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
    hosts = (params.get("host") or "").split(",")
    addresses = (params.get("hostaddr") or "").split(",")
    if params.get("hostaddr") and not params.get("host"):
        hosts = addresses
    # An empty entry (`host=db,`) is libpq's default: the local socket.
    if not all(hosts) or (params.get("hostaddr") and not all(addresses)):
        raise TenantDsnError(
            "the connection string names no host (or an empty one): a tenant's database is reached over TCP"
        )
    if any(h.startswith(("/", "@")) for h in hosts):
        raise TenantDsnError(
            "the connection string names a Unix socket: a tenant's database is reached over TCP"
        )
    if not params.get("user"):
        raise TenantDsnError("the connection string names no user (the operator's would be taken)")
    # Set, so that libpq never falls back to the operator's environment or home directory for them.
    params.setdefault("password", "")
    params["passfile"] = NO_FILE
    params["sslcert"] = params["sslkey"] = NO_FILE
    if psycopg.pq.version() >= 160000:
        params["sslcertmode"] = "disable"  # no client certificate, whichever file libpq would find
    return make_conninfo(**params)
