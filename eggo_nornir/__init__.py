"""eggo-nornir: deploy production Kubernetes clusters over SSH with Nornir.

A re-implementation of openEuler's eggo. Three ways in: the CLI
(`python -m eggo_nornir`), the Python API (notebooks), and the Nornir plugins and
tasks for embedding in an existing Nornir project.
"""

from __future__ import annotations

import warnings
from importlib.metadata import PackageNotFoundError, version

# paramiko 2.12 (the newest nornir-paramiko allows) touches cryptography's TripleDES alias
# on import, which prints a deprecation warning on every CLI run. We never negotiate 3DES.
warnings.filterwarnings("ignore", message=r".*TripleDES has been moved.*")

try:
    __version__ = version("eggo-nornir")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["Cluster", "__version__"]


def __getattr__(name: str) -> object:
    """`from eggo_nornir import Cluster` without importing Nornir for every CLI start."""
    if name == "Cluster":
        from eggo_nornir.cluster import Cluster

        return Cluster
    raise AttributeError(f"module 'eggo_nornir' has no attribute {name!r}")
