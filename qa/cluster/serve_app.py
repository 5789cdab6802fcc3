"""`qa serve --ray`: the same FastAPI app (`/ask`, the chat page, `/docs`, `/articles`) from N
Ray Serve replicas behind Ray Serve's HTTP proxy.

In:  Settings read once by the CLI (passed to every replica, so all of them use the same index
     folder and models), the number of replicas and their CPUs; with --replica-of, the folder the
     writer publishes into.
Out: a Serve application named `newsqa`, running until the CLI is stopped.

Each replica is one process with its own pipeline over the index folder: every question reads
the newest committed state (the store follows other processes' writes), and a write (POST/DELETE
/articles) sent to any replica commits through the store's single-writer lock, so writes from
replicas and from `qa ingest` are applied one at a time (409 when the lock stays taken). The
index is SQLite in WAL mode, which processes share only on one host: the replicas are placed on
the node this command runs on, the one that holds the index (docs/scale-out.md).

With --replica-of FOLDER the replicas go to any node with CPUs instead: each answers from its
node's own read-only copy (QA_INDEX_DIR on that node, `{node}` allowed), pulled from FOLDER before
it loads and then every --pull-every seconds (qa.cluster.node_copy); writes answer 403, and a copy
more than QA_REPLICA_MAX_LAG_S behind answers 503. Every response names the replica that made it
(X-QA-Replica) and its node (X-QA-Node), to see the load spread.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Awaitable, Callable

import ray
from fastapi import FastAPI, Request, Response
from ray import serve

from qa.cluster import ClusterError
from qa.cluster.node_copy import CopySource, follower_for, replica_settings
from qa.config import Settings
from qa.index.follower import Follower
from qa.serve.app import create_app

log = logging.getLogger(__name__)

APP_NAME = "newsqa"
REPLICA_HEADER = "X-QA-Replica"
NODE_HEADER = "X-QA-Node"  # the Ray node id of the replica that answered
NODE_ID_LABEL = "ray.io/node-id"  # a label Ray gives every node


class QAReplica:
    """One replica: the app of `qa serve` (qa.serve.app), built in the replica's process (made a Serve
    deployment by `deploy`). With `copy` it answers from its node's own copy of the index, pulled
    from the publish folder before it loads and then every few seconds (qa.cluster.node_copy)."""

    def __init__(self, settings: Settings, copy: CopySource | None = None) -> None:
        self.node = ray.get_runtime_context().get_node_id()
        self.follower: Follower | None = None
        if copy is not None:
            settings = replica_settings(settings, self.node)
            self.follower = follower_for(settings, copy, self.node)
        self.settings = settings

    def __serve_build_asgi_app__(self) -> FastAPI:
        # The app loads the index and the models in its lifespan, as under uvicorn: /healthz
        # answers 503 "loading" until this replica is ready (with a copy: until its first pull too).
        before_load = self.follower.start if self.follower is not None else None
        app = create_app(self.settings, before_load=before_load, node=self.node)
        replica = serve.get_replica_context().replica_id.unique_id
        node = self.node

        @app.middleware("http")
        async def name_the_replica(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            response = await call_next(request)
            response.headers[REPLICA_HEADER] = replica
            response.headers[NODE_HEADER] = node
            return response

        return app

    def __del__(self) -> None:  # Serve calls it when it stops the replica
        follower = getattr(self, "follower", None)  # None too when __init__ failed before it
        if follower is not None:
            follower.stop()


def _running_http_address() -> tuple[str, int] | None:
    """Where Ray Serve's HTTP proxy listens if Serve already runs on this cluster, else None.
    Serve fixes it once per cluster, when it first starts (Ray 2.60 has no public getter)."""
    from ray.serve.context import _get_global_client

    client = _get_global_client(raise_if_no_controller_running=False)
    return None if client is None else (client.http_config.host, client.http_config.port)


def _this_node_cpus() -> tuple[str, int]:
    """The id of the node this process runs on, and its CPUs."""
    node_id = ray.get_runtime_context().get_node_id()
    node = next(n for n in ray.nodes() if n["NodeID"] == node_id)
    return node_id, int(node["Resources"].get("CPU", 0))


def _placement(replicas: int, cpus_per_replica: int, anywhere: bool) -> dict[str, object]:
    """The replicas' Ray actor options: their CPUs, and unless `anywhere` a label selector on this
    node (the one that holds the live index). Refuses more CPUs than the place has."""
    need = replicas * cpus_per_replica
    if anywhere:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if need > cpus:
            raise ClusterError(
                f"{replicas} replicas of {cpus_per_replica} CPU(s) need {need} CPUs; the cluster has {cpus}"
            )
        return {"num_cpus": cpus_per_replica}
    node_id, cpus = _this_node_cpus()
    if need > cpus:
        raise ClusterError(
            f"{replicas} replicas of {cpus_per_replica} CPU(s) need {need} CPUs on the node that holds the "
            f"index; Ray gives this node {cpus} (--replica-of FOLDER places replicas on any node, each with a copy)"
        )
    return {"num_cpus": cpus_per_replica, "label_selector": {NODE_ID_LABEL: node_id}}


def _start_serve(host: str, port: int) -> bool:
    """Start Serve's HTTP proxy on host:port unless Serve runs; returns whether this call started it."""
    running = _running_http_address()
    if running is not None and running != (host, port):
        raise ClusterError(
            f"Ray Serve already runs on this cluster at {running[0]}:{running[1]} (Serve takes its "
            f"address once per cluster): use --host {running[0]} --port {running[1]}, or stop it "
            "first with `serve shutdown`"
        )
    if running is None:
        serve.start(http_options={"host": host, "port": port})
    return running is None


def deploy(
    settings: Settings,
    host: str,
    port: int,
    replicas: int,
    cpus_per_replica: int,
    copy: CopySource | None = None,
) -> bool:
    """Start `replicas` replicas of the app on the connected cluster, each reserving (and using as
    torch threads) `cpus_per_replica` CPUs, behind Ray Serve's proxy on host:port. Without `copy`
    they run on this node, over its index; with it on any node with CPUs, each over its node's copy
    (settings.index_dir, `{node}` allowed) pulled from copy.folder. Returns whether this call
    started Serve itself (then it stops Serve when done)."""
    actor_options = _placement(replicas, cpus_per_replica, anywhere=copy is not None)
    started = _start_serve(host, port)
    per_replica = settings.model_copy(update={"threads": cpus_per_replica})
    deployment = serve.deployment(
        name="QAReplica",
        num_replicas=replicas,
        ray_actor_options=actor_options,
        # Let each replica's own gate queue and refuse (503 + Retry-After) as `qa serve` does,
        # rather than Serve holding requests back in front of it.
        max_ongoing_requests=settings.max_queued_requests + settings.max_concurrent_model_calls + 1,
    )(serve.ingress()(QAReplica))
    serve.run(deployment.bind(per_replica, copy), name=APP_NAME, route_prefix="/")
    where = f"on any node, each over its node's copy of {copy.folder}" if copy else "on this node"
    log.info("%d replicas of %s deployed %s, on http://%s:%d", replicas, APP_NAME, where, host, port)
    return started


def wait_then_undeploy(started_serve: bool) -> None:
    """Block until SIGINT or SIGTERM, then take the application down; Serve too if this
    process started it and no other application runs on it (the cluster stays up)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if started_serve and set(serve.status().applications) <= {APP_NAME}:
            serve.shutdown()
        else:
            serve.delete(APP_NAME)
