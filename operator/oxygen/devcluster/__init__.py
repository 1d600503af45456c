"""A real local Kubernetes for tests, the demo and developers: control plane + process node agent."""

from oxygen.devcluster.cluster import LocalCluster
from oxygen.devcluster.controlplane import ControlPlane, ControlPlaneError
from oxygen.devcluster.nodeagent import NodeAgent

__all__ = ["ControlPlane", "ControlPlaneError", "LocalCluster", "NodeAgent"]
