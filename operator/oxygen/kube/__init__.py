"""Our one Kubernetes client (the official `kubernetes` package), wrapped in the few calls we make."""

from oxygen.kube.client import Kube, load_api_client

__all__ = ["Kube", "load_api_client"]
