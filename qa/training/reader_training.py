"""Fine-tune an encoder shipped in a PyPI package into an extractive (SQuAD) reader.

Built for 2 CPU cores running for hours in the background:
- dropout is off (it halves CPU speed; one pass over the data barely needs it);
- the word embeddings are frozen (half the parameters; no dense AdamW update for them);
- batches are length-bucketed (windows of similar length together, so little padding);
- the learning rate warms up, then decays linearly over the planned run;
- a checkpoint (weights, optimiser, position in the data) is written atomically every few
  minutes and `--resume` continues from it bit for bit;
- exported weights carry `training_state.json`, so a fresh machine can continue from the
  shipped reader with `--init` without repeating the questions it has already seen;
- hard negatives: beside a share of its questions, each batch carries the passage of the same
  article that BM25 ranks highest for the question without holding its answer, labelled
  [CLS]. Deployed, the reader reads the top retrieved passages (QA_READ_K: 10), most on topic and
  without the answer; trained on the gold paragraph alone it finds a confident span in each
  of them. With negatives it learns to put its mass on [CLS] there, which makes its span
  probabilities comparable across passages;
- shared normalisation (Clark & Gardner 2018): a question's gold window and its negative are
  also scored under one softmax across both, so the right span must beat every span of the
  other passage, as the deployed reader compares spans across the passages it reads.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.eval.metrics import best_over_golds, exact_match, f1_score
from qa.eval.squad import PARAGRAPH_SEPARATOR, SquadQuestion, article_paragraphs, load_squad
from qa.index.loading import embedder_dir
from qa.ingest.chunking import Chunker
from qa.loading import configure_torch_threads
from qa.reader.backends import TorchSpanModel
from qa.reader.extractive import ExtractiveReader, ReaderSpan, encode_windows, pad_batch
from qa.training.memory_bm25 import BM25
from qa.training.train_config import TrainConfig

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

log = logging.getLogger(__name__)

STATE_FILE = "training_state.json"
CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class TrainState:
    """Where a run stands; saved in checkpoints and beside exported weights."""

    seed: int
    step: int = 0
    features_seen: int = 0
    total_steps: int = 0
    prior_features: int = 0  # features seen by the weights this run started from
    negatives_seen: int = 0  # hard-negative windows, on top of features_seen
    curve: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)


@dataclass
class Features:
    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    start: list[int]
    end: list[int]
    sample: list[int]  # the question each window belongs to


def build_features(
    tokenizer: PreTrainedTokenizerFast, questions: list[SquadQuestion], max_length: int, stride: int
) -> Features:
    """Windows with the token positions of the answer, or [CLS] where the window lacks it."""
    windows = encode_windows(
        tokenizer, [q.question for q in questions], [q.context for q in questions], max_length, stride
    )
    starts, ends = [], []
    for w, offsets in enumerate(windows.offsets):
        q = questions[windows.sample[w]]
        a_start = q.answer_starts[0]
        a_end = a_start + len(q.answers[0])
        ctx = [(i, o) for i, o in enumerate(offsets) if o is not None]  # the passage's tokens
        s_tok = e_tok = 0
        if ctx and ctx[0][1][0] <= a_start and ctx[-1][1][1] >= a_end:
            s_tok = next(i for i, (_, end) in ctx if end > a_start)
            e_tok = next(i for i, (start, _) in reversed(ctx) if start < a_end)
        starts.append(s_tok)
        ends.append(e_tok)
    return Features(windows.input_ids, windows.token_type_ids, starts, ends, windows.sample)


def hard_negatives(questions: list[SquadQuestion], chunker: Chunker | None = None) -> list[str | None]:
    """For each question, the passage of its own article (chunked as the index chunks it) that
    BM25 ranks highest for the question among those not containing any of its answers; None
    where there is no such passage."""
    chunker = chunker or Chunker()
    passages: dict[int, tuple[list[str], BM25]] = {}
    for article, paras in article_paragraphs(questions).items():
        text = PARAGRAPH_SEPARATOR.join(paras)  # the article as `qa eval` indexes it
        chunks = [text[s:e] for s, e in chunker.spans(text)]
        passages[article] = (chunks, BM25(chunks))
    out: list[str | None] = []
    for q in questions:
        chunks, bm25 = passages[q.article_index]
        answers = [a.lower() for a in q.answers]
        negative = None
        for row in np.argsort(-bm25.scores(q.question), kind="stable"):
            lowered = chunks[row].lower()
            if not any(a in lowered for a in answers):
                negative = chunks[row]
                break
        out.append(negative)
    return out


def batch_order(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled, length-bucketed batches: sort within pools of 50 batches, shuffle the batches."""
    rng = random.Random(seed * 1000 + epoch)
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    pool = batch_size * 50
    batches: list[list[int]] = []
    for p in range(0, len(idx), pool):
        chunk = sorted(idx[p : p + pool], key=lambda i: lengths[i])
        batches.extend(chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def score_reader(
    reader: ExtractiveReader,
    questions: list[SquadQuestion],
    batch_size: int = 64,
    progress: bool = False,
    distractors: list[str | None] | None = None,
) -> dict:
    """Reader-only EM/F1 (percent) with the gold paragraph, official normalisation. With
    `distractors`, the reader also reads each question's distractor passage (one softmax over
    both, as deployed) and its best span counts: does it still prefer the gold paragraph?"""
    from tqdm import tqdm

    em = f1 = 0.0
    for b in tqdm(range(0, len(questions), batch_size), disable=not progress, unit="batch"):
        group = questions[b : b + batch_size]
        rows = [(n, q.context) for n, q in enumerate(group)]
        if distractors is not None:
            rows += [(n, d) for n, d in enumerate(distractors[b : b + batch_size]) if d]
        results = reader.read_many(
            [group[n].question for n, _ in rows], [p for _, p in rows], n_best=1, groups=[n for n, _ in rows]
        )
        best: dict[int, ReaderSpan] = {}
        for (n, _), spans in zip(rows, results, strict=True):
            if spans and (n not in best or spans[0].score > best[n].score):
                best[n] = spans[0]
        for n, q in enumerate(group):
            pred = best[n].text if n in best else ""
            em += best_over_golds(exact_match, pred, q.answers)
            f1 += best_over_golds(f1_score, pred, q.answers)
    n = max(len(questions), 1)
    return {"em": round(100 * em / n, 2), "f1": round(100 * f1 / n, 2), "questions": len(questions)}


def evaluate(
    tokenizer: PreTrainedTokenizerFast,
    model: PreTrainedModel,
    questions: list[SquadQuestion],
    distractors: list[str | None],
    max_length: int,
    stride: int,
    bf16: bool = False,
) -> dict:
    """score_reader on the model being trained (alone, and with a distractor passage beside the
    gold one), leaving the model in the mode it was in."""
    was_training = model.training
    model.eval()
    reader = ExtractiveReader(tokenizer, TorchSpanModel(model, bf16), max_length=max_length, stride=stride)
    scores = score_reader(reader, questions)
    with_distractor = score_reader(reader, questions, distractors=distractors)
    scores["f1_with_distractor"] = with_distractor["f1"]
    if was_training:
        model.train()
    return scores


def export(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, out: Path, state: TrainState) -> None:
    """fp16 safetensors + tokenizer + training state, written to a temp folder then swapped in."""
    import copy
    import shutil

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    half = copy.deepcopy(model).half()
    half.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / STATE_FILE).write_text(json.dumps(asdict(state), indent=1))
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def _negatives_for(
    batch: list[int],
    sample: list[int],
    negative_windows: dict[int, tuple[list[int], list[int]]],
    share: float,
    seed: int,
    step: int,
) -> list[int]:
    """The questions of a seeded share of the batch that get their hard negative (each once)."""
    if share <= 0:
        return []
    rng = random.Random(seed * 1_000_003 + step)
    questions = sorted({sample[i] for i in batch} & negative_windows.keys())
    return [q for q in questions if rng.random() < share]


def shared_norm_pairs(
    batch_sample: list[int], batch_start: list[int], negative_sample: list[int]
) -> list[tuple[int, int]]:
    """(gold row, negative row) pairs in the padded batch: a question's first window that holds
    its answer, with its hard negative (negative rows follow the batch's windows)."""
    gold_row: dict[int, int] = {}
    for row, (question, start) in enumerate(zip(batch_sample, batch_start, strict=True)):
        if start > 0:
            gold_row.setdefault(question, row)
    first_negative = len(batch_sample)
    return [(gold_row[q], first_negative + n) for n, q in enumerate(negative_sample) if q in gold_row]


def shared_norm_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    mask: torch.Tensor,
    starts: list[int],
    ends: list[int],
    pairs: list[tuple[int, int]],
) -> torch.Tensor:
    """Mean cross-entropy of the gold start and end under one softmax over the (unpadded)
    tokens of the gold window and its negative."""
    import torch

    losses = []
    for gold, negative in pairs:
        for logits, target in ((start_logits, starts[gold]), (end_logits, ends[gold])):
            joint = torch.cat([logits[gold][mask[gold]], logits[negative][mask[negative]]]).float()
            losses.append(torch.logsumexp(joint, 0) - joint[target])
    return torch.stack(losses).mean()


def _save_checkpoint(
    path: Path,
    model: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainState,
) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "state": asdict(state),
        },
        tmp,
    )
    os.replace(tmp, path)  # atomic: a crash mid-save leaves the previous checkpoint


def _load_start(cfg: TrainConfig) -> tuple[PreTrainedTokenizerFast, PreTrainedModel, int, list[dict]]:
    """The tokenizer and model a run starts from (the encoder, or an exported reader with
    `init`), with the windows those weights have already seen and their learning curve."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    source = cfg.init or cfg.base or str(embedder_dir())
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForQuestionAnswering.from_pretrained(
        source,
        dtype=torch.float32,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
    )
    prior = 0
    prior_curve: list[dict] = []
    if cfg.init:
        prior_state = json.loads((Path(cfg.init) / STATE_FILE).read_text())
        prior = prior_state["prior_features"] + prior_state["features_seen"]
        prior_curve = prior_state.get("curve", [])  # the weights' history continues
    if cfg.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    return tokenizer, model, prior, prior_curve


def _negative_windows(
    cfg: TrainConfig, tokenizer: PreTrainedTokenizerFast, questions: list[SquadQuestion]
) -> dict[int, tuple[list[int], list[int]]]:
    """Question -> (ids, types) of the first window of its hard negative passage, if it has one."""
    negative_windows: dict[int, tuple[list[int], list[int]]] = {}
    if cfg.negatives <= 0:
        return negative_windows
    log.info("finding hard negatives")
    negatives = hard_negatives(questions)
    found = [(n, text) for n, text in enumerate(negatives) if text]
    enc = encode_windows(
        tokenizer,
        [questions[n].question for n, _ in found],
        [text for _, text in found],
        cfg.max_length,
        cfg.stride,
    )
    for w, sample in enumerate(enc.sample):
        # A passage's first window (passages are chunks of at most 800 characters).
        negative_windows.setdefault(found[sample][0], (enc.input_ids[w], enc.token_type_ids[w]))
    log.info("%d of %d questions have a hard negative", len(negative_windows), len(questions))
    return negative_windows


def _optimiser(model: PreTrainedModel, cfg: TrainConfig, total_steps: int) -> tuple[list, Any, Any, Callable]:
    """AdamW over the trainable parameters; the learning rate warms up, then decays linearly to
    0 at `total_steps`. Returns (params, optimizer, scheduler, lr factor at a step)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    warm = max(1, int(cfg.warmup * total_steps))

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    return params, optimizer, scheduler, lr_at


def _resume(
    ckpt_path: Path, model: PreTrainedModel, optimizer: Any, scheduler: Any, total_steps: int, lr_at: Callable
) -> TrainState:
    import torch

    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    state = TrainState(**ckpt["state"])
    state.total_steps = total_steps  # a resumed run may re-plan its length (the decay follows)
    for group, base_lr in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
        group["lr"] = base_lr * lr_at(state.step)  # the saved lr belongs to the old plan
    log.info("resumed at step %d (%d windows seen)", state.step, state.features_seen)
    return state


def _step(
    model: PreTrainedModel,
    cfg: TrainConfig,
    features: Features,
    batch: list[int],
    negative_windows: dict[int, tuple[list[int], list[int]]],
    negative_questions: list[int],
    pad_id: int,
) -> torch.Tensor:
    """The loss of one batch: its windows, plus the hard negatives of `negative_questions`
    (labelled [CLS]), plus the shared-normalisation loss when on. Gradients are computed."""
    import torch

    rows = [features.input_ids[i] for i in batch]
    type_rows = [features.token_type_ids[i] for i in batch]
    starts = [features.start[i] for i in batch]
    ends = [features.end[i] for i in batch]
    pairs = (
        shared_norm_pairs([features.sample[i] for i in batch], starts, negative_questions) if cfg.shared_norm else []
    )
    rows += [negative_windows[q][0] for q in negative_questions]
    type_rows += [negative_windows[q][1] for q in negative_questions]
    starts += [0] * len(negative_questions)
    ends += [0] * len(negative_questions)
    ids, mask = pad_batch(rows, pad_id)
    types, _ = pad_batch(type_rows, 0)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
        result = model(
            input_ids=torch.from_numpy(ids),
            attention_mask=torch.from_numpy(mask),
            token_type_ids=torch.from_numpy(types),
            start_positions=torch.tensor(starts),
            end_positions=torch.tensor(ends),
        )
    loss = result.loss
    if pairs:
        loss = loss + cfg.shared_norm * shared_norm_loss(
            result.start_logits, result.end_logits, torch.from_numpy(mask).bool(), starts, ends, pairs
        )
    loss.backward()
    return loss


def _curve_point(run: _Run, model: PreTrainedModel, state: TrainState, rate: float) -> None:
    """Score the dev questions, append the point to the learning curve (and curve.jsonl), and
    export the weights so far to WORK/latest."""
    cfg = run.cfg
    scores = evaluate(run.tokenizer, model, run.dev, run.dev_distractors, cfg.max_length, cfg.stride, cfg.bf16)
    point = {
        "windows_seen": state.prior_features + state.features_seen,
        "negatives_seen": state.negatives_seen,
        "step": state.step,
        **scores,
        "windows_per_s": round(rate, 2),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    state.curve.append(point)
    log.info("learning curve: %s", point)
    with open(run.work / "curve.jsonl", "a") as fh:
        fh.write(json.dumps(point) + "\n")
    export(model, run.tokenizer, run.work / "latest", state)


@dataclass
class _Run:
    """What the training loop reads and does not change."""

    cfg: TrainConfig
    tokenizer: PreTrainedTokenizerFast
    work: Path
    dev: list[SquadQuestion]
    dev_distractors: list[str | None]
    # Each epoch has its own order; the exported start point is skipped, so --init never
    # repeats the windows the shipped weights have already been trained on in this epoch.
    # Not modulo the epoch: weights past an epoch continue in the next epoch's order.
    offset_steps: int


def train(cfg: TrainConfig, progress: bool = True) -> TrainState:
    import torch

    configure_torch_threads(cfg.threads)
    torch.manual_seed(cfg.seed)  # before loading: it draws the new span head's weights
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.with_name(out.name + ".work")  # checkpoints and logs, never shipped
    work.mkdir(exist_ok=True)
    ckpt_path = work / CHECKPOINT_FILE

    tokenizer, model, prior, prior_curve = _load_start(cfg)
    log.info("reading %s", cfg.squad)
    train_questions = [q for q in load_squad(cfg.squad) if q.answerable]
    features = build_features(tokenizer, train_questions, cfg.max_length, cfg.stride)
    log.info("%d questions -> %d windows", len(train_questions), len(features.input_ids))
    negative_windows = _negative_windows(cfg, tokenizer, train_questions)

    planned = int(cfg.epochs * len(features.input_ids))
    if cfg.max_features:
        planned = min(planned, cfg.max_features)
    total_steps = max(1, math.ceil(planned / cfg.batch_size))
    state = TrainState(
        seed=cfg.seed, total_steps=total_steps, prior_features=prior, curve=list(prior_curve), config=asdict(cfg)
    )
    params, optimizer, scheduler, lr_at = _optimiser(model, cfg, total_steps)
    if cfg.resume and ckpt_path.exists():
        state = _resume(ckpt_path, model, optimizer, scheduler, total_steps, lr_at)

    dev_all = load_squad(cfg.dev) if cfg.dev else []
    dev = dev_all[: cfg.eval_questions]
    dev_distractors = hard_negatives(dev_all)[: cfg.eval_questions] if dev else []
    run = _Run(cfg, tokenizer, work, dev, dev_distractors, offset_steps=prior // cfg.batch_size)
    _loop(run, model, features, negative_windows, state, (params, optimizer, scheduler), progress, ckpt_path)
    export(model, tokenizer, out, state)
    return state


def _loop(
    run: _Run,
    model: PreTrainedModel,
    features: Features,
    negative_windows: dict[int, tuple[list[int], list[int]]],
    state: TrainState,
    optimisation: tuple[list, Any, Any],
    progress: bool,
    ckpt_path: Path,
) -> None:
    """Train from `state` to its total_steps, with learning-curve points and checkpoints."""
    import torch
    from tqdm import tqdm

    cfg, (params, optimizer, scheduler) = run.cfg, optimisation
    lengths = [len(x) for x in features.input_ids]
    steps_per_epoch = math.ceil(len(lengths) / cfg.batch_size)
    model.train()
    pad_id = run.tokenizer.pad_token_id or 0
    last_ckpt = time.monotonic()
    next_eval = (state.features_seen // cfg.eval_every + 1) * cfg.eval_every
    bar = tqdm(total=state.total_steps, initial=state.step, disable=not progress, unit="step")
    t0, seen0 = time.monotonic(), state.features_seen
    orders: dict[int, list[list[int]]] = {}
    while state.step < state.total_steps:
        epoch, in_epoch = divmod(state.step + run.offset_steps, steps_per_epoch)
        if epoch not in orders:
            orders = {epoch: batch_order(lengths, cfg.batch_size, cfg.seed, epoch)}
        batch = orders[epoch][in_epoch]
        negative_questions = _negatives_for(
            batch, features.sample, negative_windows, cfg.negatives, cfg.seed, state.step
        )
        loss = _step(model, cfg, features, batch, negative_windows, negative_questions, pad_id)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.features_seen += len(batch)
        state.negatives_seen += len(negative_questions)
        rate = (state.features_seen - seen0) / max(1e-6, time.monotonic() - t0)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", win_s=f"{rate:.1f}")
        done = state.step >= state.total_steps
        if run.dev and (state.features_seen >= next_eval or done):
            next_eval += cfg.eval_every
            _curve_point(run, model, state, rate)
        if done or time.monotonic() - last_ckpt > cfg.checkpoint_minutes * 60:
            _save_checkpoint(ckpt_path, model, optimizer, scheduler, state)
            last_ckpt = time.monotonic()
    bar.close()
