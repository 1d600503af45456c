"""Printing: JSON (whole, or an array streamed element by element) and kubectl-like tables."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, TextIO

from oxygen.timefmt import now as timefmt_now
from oxygen.timefmt import parse_rfc3339

Row = Sequence[Any]


def print_json(value: Any, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    stream.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def print_listing(
    records: Sequence[Any],
    as_json: bool,
    what: str,
    headers: Sequence[str],
    rows: Callable[[Sequence[Any]], Iterable[Row]],
) -> None:
    """A list command's output: the records as JSON, or a table, or a line saying there are none."""
    if as_json:
        print_json(list(records))
    elif not records:
        print(f"No {what} found.", file=sys.stderr)
    else:
        sys.stdout.write(render_table(headers, rows(records)))


def cell(value: Any) -> str:
    if value is None:
        return "<none>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render_table(headers: Sequence[str], rows: Iterable[Row]) -> str:
    """Columns padded to their widest cell, three spaces apart (kubectl's layout)."""
    texts = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in texts:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    lines = [_line(headers, widths)] + [_line(row, widths) for row in texts]
    return "\n".join(lines) + "\n"


def _line(values: Sequence[str], widths: Sequence[int]) -> str:
    padded = [v.ljust(w) for v, w in zip(values[:-1], widths[:-1], strict=True)]
    return "   ".join([*padded, values[-1]]).rstrip()


class StreamingTable:
    """A table printed as rows arrive: widths are fixed by the first batch (later cells may overflow)."""

    def __init__(self, headers: Sequence[str], out: TextIO | None = None) -> None:
        self.headers = list(headers)
        self.out = out or sys.stdout
        self.widths: list[int] | None = None

    def write(self, rows: Sequence[Row]) -> None:
        texts = [[cell(v) for v in row] for row in rows]
        if self.widths is None:
            if not texts:
                return
            self.widths = [len(h) for h in self.headers]
            for row in texts:
                for i, text in enumerate(row):
                    self.widths[i] = max(self.widths[i], len(text))
            self.out.write(_line(self.headers, self.widths) + "\n")
        for row in texts:
            self.out.write(_line(row, self.widths) + "\n")
        self.out.flush()

    @property
    def empty(self) -> bool:
        return self.widths is None


class JsonArrayWriter:
    """A JSON array written one element per line as they come, so output never waits for the end."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.count = 0

    def __enter__(self) -> JsonArrayWriter:
        self.out.write("[")
        return self

    def write(self, value: Any) -> None:
        self.out.write(("\n" if self.count == 0 else ",\n") + json.dumps(value, ensure_ascii=False))
        self.count += 1

    def flush(self) -> None:
        self.out.flush()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # On an error the array stays open: truncated output must not parse as a complete answer.
        if exc_type is None:
            self.out.write("\n]\n" if self.count else "]\n")
            self.out.flush()


def age(stamp: str | None, now: dt.datetime | None = None) -> str:
    """kubectl's human duration: 45s, 3m20s, 25m, 5h10m, 30h, 3d4h, 40d, 3y."""
    then = parse_rfc3339(stamp)
    if then is None:
        return "<unknown>"
    seconds = int(((now or timefmt_now()) - then).total_seconds())
    return human_duration(max(seconds, 0))


def human_duration(seconds: int) -> str:
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def truncate(text: str | None, width: int = 60) -> str | None:
    if text is None:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
