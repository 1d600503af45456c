"""The operator's own health: reconcile passes, Kubernetes API calls, queue depth.

API calls: `instrument_api_client` wraps the official client's `rest_client.request` (every call
the generated APIs make goes through it) and counts the HTTP verb and status code; a call that
raises before a reply (connection refused, TLS, timeout) counts with code "error". kopf talks to
the API server over its own aiohttp session, so its watches are not in these figures.

kopf's watch restarts are not counted: kopf offers no public hook for them, and reading its private
watcher log lines would break silently on a kopf upgrade. kopf logs a watch that fails at WARNING.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

API_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_VERBS = frozenset({"GET", "HEAD", "DELETE", "POST", "PUT", "PATCH", "OPTIONS"})


class HealthMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.reconcile_duration = Histogram(
            "oxygen_reconcile_duration_seconds",
            "Duration of one reconcile pass of a Run.",
            buckets=RECONCILE_BUCKETS,
            registry=registry,
        )
        self.reconcile_errors = Counter(
            "oxygen_reconcile_errors_total",
            "Reconcile passes that raised an error.",
            registry=registry,
        )
        self.api_requests = Counter(
            "oxygen_kube_api_requests_total",
            "Requests the operator made to the Kubernetes API, by HTTP verb and status code.",
            ["verb", "code"],
            registry=registry,
        )
        self.api_duration = Histogram(
            "oxygen_kube_api_request_duration_seconds",
            "Latency of requests to the Kubernetes API, by HTTP verb.",
            ["verb"],
            buckets=API_LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "oxygen_reconcile_queue_depth",
            "Runs whose reconcile has work pending.",
            registry=registry,
        )

    @contextmanager
    def reconcile_timer(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        except BaseException as err:
            if not isinstance(err, GeneratorExit):
                self.reconcile_errors.inc()
            raise
        finally:
            self.reconcile_duration.observe(time.perf_counter() - start)

    def instrument_api_client(self, api_client: Any) -> Any:
        """Count every request of `api_client` (idempotent: a client is wrapped once)."""
        rest = api_client.rest_client
        if getattr(rest.request, "_oxygen_instrumented", False):
            return api_client
        original: Callable[..., Any] = rest.request
        requests, duration = self.api_requests, self.api_duration

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            verb = str(method).upper()
            verb = verb if verb in _VERBS else "OTHER"
            start = time.perf_counter()
            try:
                response = original(method, url, *args, **kwargs)
            except Exception:
                requests.labels(verb, "error").inc()
                raise
            finally:
                duration.labels(verb).observe(time.perf_counter() - start)
            requests.labels(verb, str(getattr(response, "status", "error"))).inc()
            return response

        request._oxygen_instrumented = True  # type: ignore[attr-defined]
        rest.request = request
        return api_client

    def set_queue_depth(self, depth: int) -> None:
        self.queue_depth.set(max(0, depth))
