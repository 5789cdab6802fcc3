"""`qa ingest --ray`: the passages are embedded by Ray Data on the cluster's workers; the driver
(this process) chunks, and commits as the one writer.

In:  articles, already read; the pipeline whose index they go into.
Out: the same index a single-process `qa ingest` makes: the same articles committed in the same
     groups of 256 in the same order (so the same passage ids), vectors equal to within float
     noise.

One Ray Data job embeds every passage (its start-up, workers spawned and models loaded, is paid
once); the vectors stream back in passage order (preserve_order), and each group of articles is
committed through `QAPipeline.add_embedded` (the store's write lock: one writer across processes)
as soon as its passages are in. A worker that dies mid-batch is restarted and its batch run
again by Ray; the driver checks that every passage came back exactly once, in order, before it
commits the group that holds it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import ray
import ray.data

from qa.cluster import ClusterError
from qa.index.embedding import SentenceTransformerEmbedder
from qa.loading import configure_torch_threads
from qa.pipeline import QAPipeline, _last_of_each_id, embedded_batch
from qa.types import Article

log = logging.getLogger(__name__)

EMBED_BATCH = 32  # passages per Ray task: ~2-3 s of one core, so a retried batch costs little
COMMIT_ARTICLES = 256  # articles per commit, as QAPipeline.add_articles commits them


class EmbedPassages:
    """One per Ray worker (an actor of Ray Data's pool): loads the embedder once, then embeds
    batch after batch on one core."""

    def __init__(self, embedder_path: str | None, passage_embedder: str = "torch") -> None:
        configure_torch_threads(1)  # one core per worker: more workers, not more threads
        self.embedder = SentenceTransformerEmbedder(embedder_path, threads=1, passage_embedder=passage_embedder)
        self.embedder.encode(["warm up"])  # loaded now, not inside the first batch's time

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.embedder.encode([str(t) for t in batch["text"]], batch_size=EMBED_BATCH)
        return {"row": batch["row"], "vector": vectors}


def embed_on_cluster(texts: Sequence[str], embedder: tuple[str | None, str], workers: int) -> Iterator[np.ndarray]:
    """The vectors of `texts`, in their order, a block at a time, embedded by `workers` Ray
    workers of one CPU each with `embedder` (its path, and QA_PASSAGE_EMBEDDER: the workers
    embed as the index records). Raises ClusterError if a passage comes back twice, out of order
    or not at all (a commit must never pair a vector with the wrong passage)."""
    if not texts:
        return
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # the CLI shows one bar, in passages
    # One block per batch: a retried task redoes one batch, and idle workers take the next one.
    dataset = ray.data.from_items(
        [{"row": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=-(-len(texts) // EMBED_BATCH)
    )
    embedded = dataset.map_batches(
        EmbedPassages,
        fn_constructor_args=embedder,
        batch_size=EMBED_BATCH,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )  # Ray Data's actor pool restarts a worker that dies and runs its batch again
    expected = 0
    try:
        for block in embedded.iter_batches(batch_size=None, batch_format="numpy"):
            rows = block["row"]
            if not np.array_equal(rows, np.arange(expected, expected + len(rows))):
                raise ClusterError(
                    f"passages came back out of order or twice (expected row {expected}, got "
                    f"{rows[:3].tolist()}...); nothing after row {expected} was committed"
                )
            expected += len(rows)
            yield np.asarray(block["vector"], dtype=np.float32)
    except ray.exceptions.RayError as exc:
        raise ClusterError(f"the embedding job failed on the cluster after {expected} passages: {exc}") from exc
    if expected != len(texts):
        raise ClusterError(f"the cluster returned {expected} of {len(texts)} passages; the rest were not committed")


def recut(blocks: Iterator[np.ndarray], sizes: Sequence[int], dim: int) -> Iterator[np.ndarray]:
    """Cut a stream of vector blocks into consecutive pieces of `sizes` rows; the stream must
    hold exactly that many rows (ClusterError otherwise, raised before the piece it spoils)."""
    pending, have = [np.zeros((0, dim), np.float32)], 0
    for size in sizes:
        while have < size:
            block = next(blocks, None)
            if block is None:
                raise ClusterError(f"the cluster returned {have} vectors where {size} were due")
            pending.append(block)
            have += len(block)
        joined = np.concatenate(pending)
        yield joined[:size]
        pending, have = [joined[size:]], have - size
    if have or next(blocks, None) is not None:
        raise ClusterError("the cluster returned more vectors than passages were sent")


def ingest_on_cluster(
    pipeline: QAPipeline, articles: Sequence[Article], workers: int | None = None, progress: bool = False
) -> list[str]:
    """Add (or replace, by id) `articles`, embedding their passages on the connected Ray
    cluster; returns their ids. `workers` defaults to one per CPU of the cluster."""
    articles = _last_of_each_id(articles)
    chunks = pipeline.chunk_articles(articles)
    groups = [articles[i : i + COMMIT_ARTICLES] for i in range(0, len(articles), COMMIT_ARTICLES)]
    group_chunks = [[c for a in group for c in chunks[a.id]] for group in groups]
    # Within each group, passages go out shortest first: a batch of similar lengths pads little
    # (measured: 20% more passages per CPU-second than batches in article order).
    orders = [np.argsort([len(c.text) for c in passages], kind="stable") for passages in group_chunks]
    texts = [passages[i].text for passages, order in zip(group_chunks, orders, strict=True) for i in order]
    workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    log.info("embedding %d passages of %d articles on %d Ray workers", len(texts), len(articles), workers)
    settings = pipeline.settings
    embedder_path = str(settings.embedder_path) if settings.embedder_path else None
    blocks = embed_on_cluster(texts, (embedder_path, settings.passage_embedder), workers)
    if progress:
        blocks = _counted(blocks, len(texts), f"embedding on {workers} Ray workers")
    sizes = [len(passages) for passages in group_chunks]
    for group, order, sent in zip(groups, orders, recut(blocks, sizes, pipeline.spec.dim), strict=True):
        vectors = np.empty_like(sent)
        vectors[order] = sent  # back to the passages' own order
        pipeline.add_embedded(embedded_batch(group, chunks, vectors))
    return [a.id for a in articles]


def _counted(blocks: Iterator[np.ndarray], total: int, what: str) -> Iterator[np.ndarray]:
    """The blocks, with a progress bar in passages (the CLI's; Ray Data's own are off)."""
    from tqdm import tqdm

    with tqdm(total=total, unit="passage", desc=what) as bar:
        for block in blocks:
            bar.update(len(block))
            yield block
