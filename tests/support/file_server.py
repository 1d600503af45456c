"""Files served over HTTP on loopback (a thread in the test process): `itemsFrom.url` sources."""

from __future__ import annotations

import http.server
import threading
from typing import Any


class FileServer:
    """`files` maps a path to (status, body); any other path is a 404 "no such file". A 3xx's body is
    its Location."""

    def __init__(self, files: dict[str, tuple[int, bytes]]) -> None:
        served = files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code, body = served.get(self.path, (404, b"no such file"))
                self.send_response(code)
                if 300 <= code < 400:
                    self.send_header("Location", body.decode())
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
