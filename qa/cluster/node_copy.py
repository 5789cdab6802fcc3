"""`qa serve --ray --replica-of FOLDER`: where a Serve replica keeps its node's copy of the index,
and the follower that keeps that copy current.

In:  the settings the CLI read (QA_INDEX_DIR may hold `{node}` or `{host}`), the publish folder and
     how often to pull it, the id of the Ray node the replica runs on.
Out: the replica's settings with its node-local index folder, and a Follower (qa.index.follower)
     that pulls the publish folder into it.

SQLite's WAL cannot span hosts, so a replica on another node answers from a copy of its own, on
its node's disk. `{node}` in QA_INDEX_DIR becomes the Ray node id (two Ray nodes on one machine,
or a node restarted: each a folder of its own), `{host}` the host name (one node per host: the
copy survives a restart of the node, and the next pull is a delta). Replicas on one node share
their node's folder and take turns on its LOCK to pull. Never imports Ray.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from qa.config import Settings
from qa.index.dense import DenseSettings
from qa.index.follower import Follower
from qa.resources import default_index_dir

NODE, HOST = "{node}", "{host}"
# The lag bound replicas of this mode get when QA_REPLICA_MAX_LAG_S is not set: well above the
# ~2 s of publishing and pulling every second, so that one slow pull does not take a replica out.
DEFAULT_MAX_LAG_S = 30.0


@dataclass(frozen=True)
class CopySource:
    """The folder the writer publishes into (every node must read it: a shared or synced folder),
    and how often each replica pulls it."""

    folder: Path
    pull_every_s: float = 1.0


def default_copy_dir() -> Path:
    """Where a node's copy lives when QA_INDEX_DIR is not set: beside the default index, never it."""
    return default_index_dir().parent / f"replica-{NODE}"


def node_local(path: Path, node_id: str, host: str | None = None) -> Path:
    """`path` with `{node}` replaced by the Ray node id and `{host}` by the host name."""
    text = str(path).replace(NODE, node_id).replace(HOST, host or socket.gethostname())
    return Path(text)


def driver_settings(settings: Settings) -> Settings:
    """The settings the CLI passes to every replica: an absolute index path (a replica's working
    folder is Ray's), the default copy folder when QA_INDEX_DIR is unset, and a lag bound."""
    index_dir = settings.index_dir.absolute() if "index_dir" in settings.model_fields_set else default_copy_dir()
    bound = DEFAULT_MAX_LAG_S if settings.replica_max_lag_s is None else settings.replica_max_lag_s
    return settings.model_copy(update={"index_dir": index_dir, "replica_max_lag_s": bound})


def replica_settings(settings: Settings, node_id: str) -> Settings:
    """A replica's settings on node `node_id`: its own node's index folder."""
    return settings.model_copy(update={"index_dir": node_local(settings.index_dir, node_id)})


def follower_for(settings: Settings, source: CopySource, node_id: str) -> Follower:
    """The follower that keeps the copy at settings.index_dir current (it records its seq in the
    publish folder as `<host>-<node id>`, for `qa replica status`)."""
    dense = DenseSettings.of(settings)
    name = f"{socket.gethostname()}-{node_id[:12]}"
    return Follower(source.folder, settings.index_dir, source.pull_every_s, name, dense)
