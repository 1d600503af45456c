"""The run timeline page: one self-contained HTML document (inline CSS and SVG, no scripts, no network).

Pure: the same Run, shards and events give the same page. Every value from the cluster is escaped.
Item inputs and outputs are never shown; errors are shown truncated, as the Run's status shows them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from oxygen.api.run import TERMINAL_PHASES
from oxygen.metrics.timeparse import epoch
from oxygen.timefmt import rfc3339
from oxygen.web.timeline import TIMELINE_STATUSES, Timeline, bucket, bucket_counted, finishes

REFRESH_SECONDS = 5
MAX_FAILED_ROWS = 200
ERROR_CHARS = 500
COLOURS = {
    "succeeded": "#2e9e5b",
    "failed": "#d64545",
    "skipped": "#9aa5b1",
    "running": "#3b82f6",
    "retrying": "#f0a020",
    "pending": "#e4e7eb",
}


@dataclass(frozen=True)
class EventRow:
    time: str
    type: str
    reason: str
    message: str
    count: int = 1


def e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return 0


def _clock(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%H:%M:%S")


def _duration(seconds: float) -> str:
    whole = max(0, round(seconds))
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else (f"{m}m {s:02d}s" if m else f"{s}s")


def progress_bar(counts: Mapping[str, int], total: int) -> str:
    finished = sum(counts.get(s, 0) for s in TIMELINE_STATUSES)
    pct = 100.0 * finished / total if total else 100.0
    segments = []
    for status in ("succeeded", "failed", "skipped", "running", "retrying"):
        n = counts.get(status, 0)
        if n and total:
            width = 100.0 * n / total
            segments.append(
                f'<div class="seg" style="width:{width:.3f}%;background:{COLOURS[status]}" '
                f'title="{e(status)}: {n}"></div>'
            )
    return (
        f'<div class="bar" role="progressbar" aria-valuenow="{pct:.0f}" aria-valuemin="0" '
        f'aria-valuemax="100">{"".join(segments)}</div>'
        f'<p id="progress-text">{finished} of {total} items finished ({pct:.0f}%)</p>'
    )


def timeline_svg(timeline: Timeline) -> str:
    width, height, pad_left, pad_bottom = 800, 180, 40, 24
    plot_w, plot_h = width - pad_left - 10, height - pad_bottom - 10
    peak = max(timeline.peak, 1)
    n = len(timeline.buckets)
    bar_w = plot_w / n
    parts = [
        f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="items finished over time">',
        f'<line x1="{pad_left}" y1="{10 + plot_h}" x2="{width - 10}" y2="{10 + plot_h}" stroke="#888"/>',
        f'<text x="{pad_left - 6}" y="16" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{pad_left - 6}" y="{10 + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    for i, row in enumerate(timeline.buckets):
        y = 10.0 + plot_h
        x = pad_left + i * bar_w
        for status in TIMELINE_STATUSES:
            count = row.get(status, 0)
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" '
                f'fill="{COLOURS[status]}"><title>{count} {e(status)} at '
                f"{_clock(timeline.start + i * timeline.bucket_seconds)}</title></rect>"
            )
    parts.append(
        f'<text x="{pad_left}" y="{height - 6}" font-size="11">{_clock(timeline.start)}</text>'
        f'<text x="{width - 10}" y="{height - 6}" font-size="11" text-anchor="end">'
        f"{_clock(timeline.end)} UTC</text>"
    )
    parts.append("</svg>")
    legend = " ".join(
        f'<span class="key"><i style="background:{COLOURS[s]}"></i>{s} '
        f'<b id="timeline-{s}">{timeline.total(s)}</b></span>'
        for s in TIMELINE_STATUSES
    )
    per = (
        _duration(timeline.bucket_seconds)
        if timeline.bucket_seconds >= 1
        else f"{timeline.bucket_seconds:.2f}s"
    )
    return "".join(parts) + f'<p class="legend">{legend} <span class="muted">(one bar = {e(per)})</span></p>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], table_id: str, empty: str) -> str:
    if not rows:
        return f'<p class="muted" id="{table_id}-empty">{e(empty)}</p>'
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _shard_size(spec: Mapping[str, Any]) -> int:
    """Its items, or with an item store the rows of its range."""
    bounds = spec.get("range")
    if isinstance(bounds, Mapping):
        return _int(bounds.get("end")) - _int(bounds.get("start"))
    return len(spec.get("items") or [])


@dataclass(frozen=True)
class StoredItems:
    """For a run whose items are in the item store (its shards hold a summary, no items): the first
    failed items (status items' shape), how many failed, and finishes counted per second."""

    failed: Sequence[Mapping[str, Any]]
    failed_total: int
    finishes: list[tuple[float, str, int]]


def render(
    run: Mapping[str, Any],
    shards: Sequence[Mapping[str, Any]],
    events: Sequence[EventRow],
    now: float,
    stored: StoredItems | None = None,
) -> str:
    meta = run.get("metadata") or {}
    spec = run.get("spec") or {}
    status = run.get("status") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    phase = str(status.get("phase") or "queued")
    total = _int(status.get("itemsTotal"))
    counts = {
        "succeeded": _int(status.get("itemsSucceeded")),
        "failed": _int(status.get("itemsFailed")),
        "skipped": _int(status.get("itemsSkipped")),
        "pending": _int(status.get("itemsPending")),
        "running": _int(status.get("itemsRunning")),
        "retrying": _int(status.get("itemsRetrying")),
    }
    started, finished = epoch(status.get("startedAt")), epoch(status.get("finishedAt"))
    duration = _duration((finished or now) - started) if started is not None else "—"
    running = phase not in TERMINAL_PHASES

    shape = [
        ("phase", f'<span class="phase phase-{e(phase)}">{e(phase)}</span>'),
        ("kind", e(status.get("kind") or spec.get("kind"))),
        ("mode", e(status.get("mode") or spec.get("mode"))),
        ("trigger", e(status.get("trigger") or spec.get("trigger"))),
        ("provider", e(_provider(spec.get("producer") or {}))),
        ("items-total", str(total)),
        *((f"items-{k}", str(v)) for k, v in counts.items()),
        ("credits-used", e(status.get("creditsUsed", "0"))),
        ("credits-reserved", e(status.get("creditsReserved", "0"))),
        ("credits-estimated", e(status.get("creditsEstimated", "0"))),
        ("credit-account", e(spec.get("creditAccount", "default"))),
        ("started-at", e(status.get("startedAt") or "—")),
        ("finished-at", e(status.get("finishedAt") or "—")),
        ("duration", e(duration)),
    ]
    if status.get("message"):
        shape.append(("message", e(status.get("message"))))
    shape_rows = "".join(
        f'<tr><th>{e(key.replace("-", " "))}</th><td id="{e(key)}">{value}</td></tr>' for key, value in shape
    )

    ordered = sorted(
        shards,
        key=lambda s: (_int((s.get("spec") or {}).get("round")), _int((s.get("spec") or {}).get("index"))),
    )
    shard_rows = []
    failed_rows: list[list[str]] = []
    failed_total = 0
    for shard in ordered:
        s_spec = shard.get("spec") or {}
        s_status = shard.get("status") or {}
        summary = s_status.get("summary") or {}
        shard_rows.append(
            [
                e((shard.get("metadata") or {}).get("name")),
                e(s_spec.get("round", 0)),
                e(s_spec.get("index", 0)),
                e(s_status.get("phase", "Pending")),
                str(_shard_size(s_spec)),
                str(_int(summary.get("succeeded"))),
                str(_int(summary.get("failed"))),
                str(_int(summary.get("skipped"))),
                str(
                    _int(summary.get("pending"))
                    + _int(summary.get("running"))
                    + _int(summary.get("retrying"))
                ),
            ]
        )
    failed_items = [i for shard in ordered for i in (shard.get("status") or {}).get("items") or []]
    if stored is not None:
        failed_items = [*failed_items, *stored.failed]
        failed_total = stored.failed_total - len(stored.failed)
    for item in failed_items:
        if item.get("status") != "failed" or item.get("supersededBy"):
            continue
        failed_total += 1
        if len(failed_rows) < MAX_FAILED_ROWS:
            error = str(item.get("error") or "")
            if len(error) > ERROR_CHARS:
                error = error[:ERROR_CHARS] + "…"
            failed_rows.append(
                [
                    e(item.get("id")),
                    e(item.get("rowId") or ""),
                    e(item.get("attemptCount", 0)),
                    e(item.get("errorClass") or ""),
                    f"<code>{e(error)}</code>",
                ]
            )
    more = (
        f'<p class="muted">showing {len(failed_rows)} of {failed_total} failed items</p>'
        if failed_total > len(failed_rows)
        else ""
    )
    end = finished or (now if running else None)
    if stored is None:
        timeline = bucket(finishes(shards), started, end)
    else:
        counted = [(at, st, 1) for at, st in finishes(shards)] + stored.finishes
        timeline = bucket_counted(counted, started, end)
    event_rows = [
        [e(ev.time), e(ev.type), e(ev.reason), e(ev.message), str(ev.count)]
        for ev in sorted(events, key=lambda ev: ev.time)
    ]
    refresh = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if running else ""
    note = (
        f'<p class="muted" id="refresh-note">running: this page refreshes every {REFRESH_SECONDS}s</p>'
        if running
        else ""
    )
    shard_headers = [
        "shard",
        "round",
        "index",
        "phase",
        "items",
        "succeeded",
        "failed",
        "skipped",
        "unfinished",
    ]
    shards_html = _table(shard_headers, shard_rows, "shards", "no shards yet")
    failed_headers = ["item", "row", "attempts", "error class", "error"]
    failed_html = _table(failed_headers, failed_rows, "failed-items", "no failed items") + more
    event_headers = ["last seen", "type", "reason", "message", "count"]
    events_html = _table(event_headers, event_rows, "events", "no events")
    rendered_at = rfc3339(now)
    title = f"{e(namespace)}/{e(name)}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{refresh}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Run {title} · {e(phase)}</title>
<style>{STYLE}</style></head>
<body>
<header><h1>Run <span id="run-name">{title}</span></h1>{note}</header>
<section><h2>Progress</h2>{progress_bar(counts, total)}</section>
<section class="grid"><div><h2>Run</h2><table class="shape" id="shape">{shape_rows}</table></div>
<div><h2>Items finished over time</h2>{timeline_svg(timeline)}</div></section>
<section><h2>Shards ({len(shard_rows)})</h2>{shards_html}</section>
<section><h2>Failed items (<span id="failed-count">{failed_total}</span>)</h2>{failed_html}</section>
<section><h2>Events ({len(event_rows)})</h2>{events_html}</section>
<footer class="muted">rendered {rendered_at} by oxygen-operator · read-only</footer>
</body></html>
"""


STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1f2933;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:20px 0 8px}
.muted{color:#7b8794}.grid{display:grid;grid-template-columns:minmax(260px,1fr) 2fr;gap:24px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e4e7eb;vertical-align:top}
table.shape th{width:40%;color:#52606d;font-weight:500}
.bar{display:flex;height:18px;background:#e4e7eb;border-radius:4px;overflow:hidden}.seg{height:100%}
.phase{padding:1px 8px;border-radius:10px;background:#e4e7eb}.phase-succeeded{background:#c6f0d6}
.phase-completed{background:#fde2c0}.phase-failed{background:#f8c9c9}.phase-running{background:#cfe1fd}
.key{margin-right:14px}.key i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
code{white-space:pre-wrap;word-break:break-word;font-size:12px}
"""


def _provider(producer: dict[str, Any]) -> str | None:
    """The provider's name: the producer's, or the Provider it names."""
    name = producer.get("provider") or (producer.get("providerRef") or {}).get("name")
    return str(name) if name else None
