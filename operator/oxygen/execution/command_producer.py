"""The command producer: a local process per item, the call JSON on stdin, the outputs JSON on stdout.

Up to the shard's `concurrency` processes run at once (asyncio subprocesses on the worker's loop).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from oxygen.execution.headers import secret_values
from oxygen.execution.item_calls import (
    DEFAULT_MAX_RESPONSE_BYTES,
    MESSAGE_LIMIT,
    REDACT_WINDOW_BYTES,
    CallAbandoned,
    ItemCall,
    PermanentError,
    ProducerResult,
    RetryableError,
    parse_json_output,
    truncate,
)
from oxygen.execution.redaction import Redactor

EX_TEMPFAIL: Final = 75
DEFAULT_COMMAND_TIMEOUT: Final = 300.0
# A killed process group's pipes close at once; this only bounds a pathological reap.
REAP_SECONDS: Final = 5.0


@dataclass
class CommandProducer:
    """Runs argv per item.

    Exit 75 (EX_TEMPFAIL) asks for a retry; any other non-zero exit fails the item with the tail
    of stderr. The process group is killed when the call is cancelled (the worker abandons it on
    SIGTERM) or when `cancel` is set. `env` is the process's whole environment (None: the worker's
    own); `make_producer` passes one without other steps' header variables.
    """

    argv: list[str]
    timeout_seconds: float = DEFAULT_COMMAND_TIMEOUT
    cancel: threading.Event | None = None
    poll_seconds: float = 0.1
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    env: Mapping[str, str] | None = None

    async def close(self) -> None:
        return None

    async def call(self, call: ItemCall) -> ProducerResult:
        stdin = json.dumps(call.payload(), separators=(",", ":")).encode("utf-8")
        try:
            # Own session: on timeout or cancel the whole tree goes, not just the direct child.
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                env=None if self.env is None else dict(self.env),
            )
        except OSError as exc:
            raise PermanentError(
                f"cannot start {self.argv[0]!r}: {exc.strerror or exc}", "command_failed"
            ) from exc
        communicate = asyncio.ensure_future(proc.communicate(stdin))
        try:
            stdout, stderr = await self._wait(proc, communicate)
        except BaseException:
            # Cancelled (the worker is stopping), timed out or abandoned: no process is left behind.
            await self._kill(proc, communicate)
            raise
        return self._interpret(proc.returncode or 0, stdout, stderr)

    async def _wait(
        self, proc: asyncio.subprocess.Process, communicate: asyncio.Future[tuple[bytes, bytes]]
    ) -> tuple[bytes, bytes]:
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            left = deadline - time.monotonic()
            done, _ = await asyncio.wait({communicate}, timeout=max(0.0, min(self.poll_seconds, left)))
            if done:
                return communicate.result()
            if self.cancel is not None and self.cancel.is_set():
                raise CallAbandoned()
            if time.monotonic() >= deadline:
                raise RetryableError(f"command ran over {self.timeout_seconds:g}s", "timeout")

    @staticmethod
    async def _kill(
        proc: asyncio.subprocess.Process, communicate: asyncio.Future[tuple[bytes, bytes]]
    ) -> None:
        if proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
        try:
            await asyncio.wait_for(asyncio.shield(communicate), REAP_SECONDS)
        except (TimeoutError, asyncio.CancelledError, OSError):
            communicate.cancel()

    def _interpret(self, code: int, stdout: bytes, stderr: bytes) -> ProducerResult:
        redactor = Redactor(secret_values(os.environ if self.env is None else self.env))
        tail = stderr[-REDACT_WINDOW_BYTES:].decode("utf-8", "replace")
        tail = truncate(redactor.text(tail)[-MESSAGE_LIMIT:])
        if code == EX_TEMPFAIL:
            raise RetryableError(f"command asked for a retry (exit 75): {tail}", "command_tempfail")
        if code != 0:
            how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
            raise PermanentError(f"command failed ({how}): {tail or '<no stderr>'}", "command_failed")
        if len(stdout) > self.max_response_bytes:
            raise PermanentError(
                f"command wrote over {self.max_response_bytes} bytes to stdout", "output_too_large"
            )
        return ProducerResult(outputs=parse_json_output(stdout, "command stdout", redactor))
