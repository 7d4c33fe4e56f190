"""The cluster API: `Cluster` (load, render, deploy, cleanup) and the phase plans behind it."""

from eggo_nornir.cluster.api import Cluster

__all__ = ["Cluster"]
