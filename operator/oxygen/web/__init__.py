"""The operator's web server: /metrics, /healthz and the read-only run timeline pages."""

from oxygen.web.app import make_app, start_web

__all__ = ["make_app", "start_web"]
