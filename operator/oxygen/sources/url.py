"""`spec.itemsFrom.url`: a JSONL or CSV file over HTTP(S), parsed line by line as it arrives.

The rows mean what a ConfigMap key's rows mean (planning/items.py parses both). No proxy settings are
read (like the HTTP producer); a non-2xx reply fails the run with the server's status and the start of
its body.

The operator fetches it from its own network position, on a tenant's behalf: reach.py says which peers
it never talks to; redirects are followed only to http(s) URLs, checked the same way.
"""

from __future__ import annotations

import http.client
import io
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import IO

from oxygen import __version__
from oxygen.planning.items import ItemsSourceError, PlannedItem, iter_rows
from oxygen.sources import reach
from oxygen.sources.errors import HTTP_ERROR, MALFORMED, NOT_FOUND, UNREACHABLE, SourceError, one_line

TIMEOUT_SECONDS = 30
ERROR_BODY_BYTES = 300


class RefusedAddress(urllib.error.URLError):
    pass


def _check(url: str) -> None:
    """Only http(s), only to hosts reach.py allows (the peer is checked again once connected)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RefusedAddress(f"{parts.scheme or 'no'} scheme: only http and https are fetched")
    reason = reach.refused_host(parts.hostname or "")
    if reason:
        raise RefusedAddress(f"refused: {reason}")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        _check(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(
    urllib.request.ProxyHandler({}),
    reach.CheckedHTTPHandler(),
    reach.CheckedHTTPSHandler(),
    _CheckedRedirects(),
)


def stream(url: str, fmt: str) -> Iterator[PlannedItem]:
    request = urllib.request.Request(url, headers={"User-Agent": f"oxygen-operator/{__version__}"})
    try:
        _check(url)
        response = _opener.open(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as err:
        reason = NOT_FOUND if err.code in (404, 410) else HTTP_ERROR
        body = _start_of(err)
        said = f": {body}" if body else ""
        raise SourceError(reason, f"GET {url}: {err.code} {err.reason}{said}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as err:
        cause = getattr(err, "reason", err)
        raise SourceError(UNREACHABLE, f"GET {url}: {one_line(str(cause))}") from None
    with response:
        lines = io.TextIOWrapper(response, encoding="utf-8", newline="")
        try:
            yield from iter_rows(lines, fmt, url)
        except ItemsSourceError as err:
            raise SourceError(MALFORMED, str(err)) from None
        except UnicodeDecodeError as err:
            raise SourceError(MALFORMED, f"{url}: not UTF-8 text ({err.reason})") from None
        except (OSError, http.client.HTTPException) as err:
            raise SourceError(
                UNREACHABLE, f"GET {url}: the transfer broke off: {one_line(str(err))}"
            ) from None


def _start_of(err: urllib.error.HTTPError) -> str:
    try:
        return one_line(err.read(ERROR_BODY_BYTES).decode("utf-8", "replace"), ERROR_BODY_BYTES)
    except Exception:
        return ""
