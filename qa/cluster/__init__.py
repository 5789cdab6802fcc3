"""Scale-out on a Ray cluster: the compute grows, the index does not.

In:  articles read and chunked by the driver (`qa ingest --ray`), or questions over HTTP
     (`qa serve --ray`).
Out: passages embedded by Ray Data on the cluster's workers and committed by the one writer
     (embed_job), or the same FastAPI app answering from N Ray Serve replicas (serve_app),
     each following the newest committed state of the index: on the index node, or with
     --replica-of on any node, over its node's own pulled copy (node_copy).

Ray is an optional extra (`pip install -e ".[cluster]"`): this module never imports it at import
time, the submodules do, and only `qa ... --ray` imports them.
"""

from __future__ import annotations

import logging
import types

from qa.errors import QAError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install -e '.[cluster]'"


class ClusterError(QAError, RuntimeError):
    """Ray is missing, the cluster cannot be reached, or a job on it failed."""


def require_ray() -> types.ModuleType:
    """The `ray` module, or a ClusterError that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ClusterError(f"--ray needs Ray, which is not installed; install the extra: {INSTALL_HINT}") from exc
    return ray


def check_address(address: str | None) -> None:
    """An address is host:port, "auto" or "local" (Ray's words): anything else is most likely an
    article path that argparse gave to --ray, which takes an optional value."""
    if address and address not in ("auto", "local") and ":" not in address:
        raise ClusterError(
            f"--ray {address!r} is not a cluster address (host:port, auto or local); put article paths before --ray"
        )


def connect(address: str | None) -> None:
    """Join the Ray cluster at `address` (host:port of its head; "auto": RAY_ADDRESS, else the one
    `ray start` made on this machine; "local": a new one). None is "auto", but starts a local
    cluster on this machine's cores when there is none; it lives as long as this process."""
    ray = require_ray()
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {exc}") from exc
    cpus = int(ray.cluster_resources().get("CPU", 0))
    log.info("connected to Ray %s: %d nodes, %d CPUs", address or "(local)", len(ray.nodes()), cpus)
