"""oxygen-operator: execute work at scale as Kubernetes Runs."""

__version__ = "0.1.0"
