"""Follow-up questions: does retrieval find the passage when the question leans on the chat?

    python -m bench.followup [--set seeds/gold/followups.jsonl]

Over the bundled articles, each case's last question is retrieved (hybrid, top 10) four ways:
the question alone; the rule before issue 18 (a pronoun-like word, then the previous
question's words); the rule now (qa/retrieval/followup.py: previous questions and answers);
and always adding the conversation. Recall@k: the expected passage among the first k.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.report import table, write_section
from qa.config import Settings
from qa.eval.followups import FollowUpCase, load_followups
from qa.index.words import tokenize
from qa.loading import configure_torch_threads
from qa.pipeline import QAPipeline
from qa.retrieval.followup import is_follow_up, retrieval_query, with_topic
from qa.types import Turn

ROOT = Path(__file__).resolve().parent.parent
K = (1, 5, 10)

# The rule as it was before issue 18, kept here only to measure against.
_OLD_ANAPHORA = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|he|him|his|she|her|hers|this|that|these|those|there|then|the same)\b", re.I
)


def old_is_follow_up(question: str) -> bool:
    return bool(_OLD_ANAPHORA.search(question)) or not tokenize(question)


def old_query(question: str, history: Sequence[Turn]) -> str:
    if not history or not old_is_follow_up(question):
        return question
    present = set(tokenize(question))
    for turn in reversed(history):
        words = [w for w in re.findall(r"[\w’'-]+", turn.question) if tokenize(w) and tokenize(w)[0] not in present]
        if words:
            return f"{question} {' '.join(words)}"
    return question


STRATEGIES: dict[str, Callable[[str, Sequence[Turn]], str]] = {
    "question alone": lambda q, h: q,
    "rule before issue 18": old_query,
    "rule now": retrieval_query,
    "always add the conversation": with_topic,
}


def recall(ranks: list[int | None], k: int) -> float:
    return round(100 * sum(1 for r in ranks if r is not None and r <= k) / len(ranks), 1) if ranks else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--set", default=str(ROOT / "seeds" / "gold" / "followups.jsonl"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    settings = Settings()
    configure_torch_threads(settings.threads)
    cases = load_followups(args.set)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = QAPipeline(settings.model_copy(update={"index_dir": Path(tmp)}))
        pipeline.build([settings.seeds_dir])
        t0 = time.perf_counter()
        ranks: dict[str, dict[str, int | None]] = {name: {} for name in STRATEGIES}
        for case in cases:
            for name, make_query in STRATEGIES.items():
                hits = pipeline.search(make_query(case.question, case.history), settings.read_k)
                ranks[name][case.id] = case.found_at(hits)
        seconds = time.perf_counter() - t0
    load_after = os.getloadavg()
    with_passage = [c for c in cases if c.passage]
    groups: list[tuple[str, list[FollowUpCase]]] = [
        (f"all ({len(with_passage)})", with_passage),
        (f"follow-ups ({sum(c.follow_up for c in with_passage)})", [c for c in with_passage if c.follow_up]),
        (f"new topics ({sum(not c.follow_up for c in with_passage)})", [c for c in with_passage if not c.follow_up]),
    ]
    rows = []
    for name in STRATEGIES:
        for label, group in groups:
            rs = [ranks[name][c.id] for c in group]
            rows.append((name, label, *(recall(rs, k) for k in K)))
    judged = {
        "rule before issue 18": sum(old_is_follow_up(c.question) == c.follow_up for c in cases),
        "rule now": sum(is_follow_up(c.question) == c.follow_up for c in cases),
    }
    misjudged = [c.id for c in cases if is_follow_up(c.question) != c.follow_up]
    body = (
        f"{len(cases)} conversations over the bundled articles (`{Path(args.set).relative_to(ROOT)}`): "
        f"{sum(c.follow_up for c in cases)} whose last question leans on the chat, "
        f"{sum(not c.follow_up for c in cases)} that change the topic; {len(with_passage)} have a passage that "
        f"answers them. Hybrid retrieval, top {settings.read_k}; recall@k = the expected passage among the first k.\n\n"
        + table(rows, ("query", "cases", *(f"recall@{k} %" for k in K)))
        + "\n\nQuestions judged rightly as follow-up or not: "
        + ", ".join(f"{name} {n}/{len(cases)}" for name, n in judged.items())
        + f" (rule now misjudges: {', '.join(misjudged) or 'none'}). The set was written together with the rule, "
        f"so the judging figure is optimistic for unseen conversations; the recall figures compare the queries.\n\n"
        f"{len(cases) * len(STRATEGIES)} searches in {seconds:.1f} s; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after."
    )
    print(body)
    if not args.no_write:
        write_section("followup", "Follow-up questions: retrieval in a conversation", body)


if __name__ == "__main__":
    main()
