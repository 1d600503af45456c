"""tenant_dsn.py: a tenant's DSN never borrows the operator's socket, files or environment."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from oxygen.sources.tenant_dsn import NO_FILE, TenantDsnError, tenant_conninfo


@pytest.mark.parametrize(
    ("dsn", "says"),
    [
        ("dbname=app user=postgres", "names no host"),
        ("host=/var/run/postgresql user=postgres", "Unix socket"),
        ("postgresql://postgres@%2Ftmp/app", "Unix socket"),
        ("host=db,/tmp user=u password=p", "Unix socket"),
        ("host=db user=u passfile=/root/.pgpass", "passfile"),
        ("host=db service=admin", "service"),
        ("host=db user=u sslcert=/etc/oxygen/tls.crt sslkey=/etc/oxygen/tls.key", "sslcert, sslkey"),
        ("host='unterminated password=secret", "not a valid DSN"),
        ("host=db.invalid, user=u", "an empty one"),
        ("hostaddr=10.0.0.1, user=u", "an empty one"),
        ("host=db password=secret", "names no user"),
    ],
)
def test_refused(dsn: str, says: str) -> None:
    with pytest.raises(TenantDsnError, match=says) as err:
        tenant_conninfo(dsn)
    assert "secret" not in str(err.value)


@pytest.mark.parametrize(
    "dsn",
    [
        "host=127.0.0.1 port=5432 dbname=app user=u password=p",
        "postgresql://u:p@db.example:5433/app?sslmode=verify-full",
        "hostaddr=10.0.0.5 dbname=app user=u password=p",
        "host=db1,db2 port=5432,5433 user=u password=p target_session_attrs=read-write",
    ],
)
def test_accepted_with_no_fallback_to_the_operator(dsn: str) -> None:
    params = conninfo_to_dict(tenant_conninfo(dsn))
    assert params["passfile"] == NO_FILE
    assert params["sslcert"] == params["sslkey"] == NO_FILE
    assert params["password"] == conninfo_to_dict(dsn)["password"]


def test_no_password_given_means_none_not_the_operators() -> None:
    assert conninfo_to_dict(tenant_conninfo("host=db user=u"))["password"] == ""
