"""A hostile provider on loopback: it echoes the request's headers back to the caller.

    with HeaderEcho() as echo:
        ... point producer.http.url at echo.url("ok") (200, headers in the JSON body)
        ... or echo.url("bad") (400, headers in the error text) ...
        assert echo.seen("X-Api-Key") == {"the value the worker sent"}

It is what a provider that wants a tenant's credentials would do: if the worker wrote its reply into
status unredacted, whoever may read the Run would read the Secret.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class HeaderEcho:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[dict[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="header-echo")

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/{path}"

    def seen(self, header: str) -> set[str]:
        """The values of `header` the provider received (proof the attack had something to echo)."""
        with self._lock:
            return {h[header] for h in self._seen if header in h}

    def __enter__(self) -> HeaderEcho:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = dict(self.headers.items())
                with owner._lock:
                    owner._seen.append(headers)
                body: Any
                if self.path.endswith("/bad"):
                    status = 400
                    # Plain text, as many APIs answer a rejected credential.
                    body = "rejected request with headers " + "; ".join(
                        f"{k}={v}" for k, v in headers.items()
                    )
                    data = body.encode()
                else:
                    status = 200
                    body = {"echo": headers, "nested": [{"values": list(headers.values())}]}
                    data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if status == 200 else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
