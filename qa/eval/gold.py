"""Gold sets for evaluation: SQuAD JSON (v1.1/v2.0) or JSONL, validated before anything runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from qa.errors import QAError
from qa.eval.squad import PARAGRAPH_SEPARATOR, SquadFormatError, article_paragraphs, load_squad
from qa.types import Article


class GoldFormatError(QAError, ValueError):
    """A malformed gold file; the message names the line or field."""


@dataclass(frozen=True)
class GoldQuestion:
    id: str
    question: str
    answers: tuple[str, ...]  # empty: the articles do not answer it
    article_id: str | None = None  # where the answer is, when known
    answer_spans: tuple[tuple[int, int], ...] = ()  # gold character spans in that article


@dataclass
class GoldSet:
    questions: list[GoldQuestion]
    articles: list[Article]  # the gold file's own corpus (SQuAD), else empty


def _is_squad(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip()
    if not head.startswith(b"{"):
        return False
    try:
        first_line = head.split(b"\n", 1)[0]
        obj = json.loads(first_line)
        return "data" in obj  # a whole SQuAD file on one line
    except json.JSONDecodeError:
        return b'"data"' in head or b'"version"' in head


def load_gold(path: str | Path) -> GoldSet:
    path = Path(path)
    if not path.is_file():
        raise GoldFormatError(f"{path}: no such file")
    if _is_squad(path):
        return _load_squad_gold(path)
    return _load_jsonl_gold(path)


def _load_squad_gold(path: Path) -> GoldSet:
    try:
        rows = load_squad(path)
    except SquadFormatError as exc:
        raise GoldFormatError(str(exc)) from exc
    # Each SQuAD article becomes one document: its paragraphs joined by blank lines.
    articles: list[Article] = []
    paragraph_offsets: dict[tuple[str, int], int] = {}
    bodies = article_paragraphs(rows)
    ids = {title: f"squad-{n:03d}" for n, title in enumerate(bodies)}
    for title, paras in bodies.items():
        offset = 0
        for i, p in enumerate(paras):
            paragraph_offsets[(title, i)] = offset
            offset += len(p) + len(PARAGRAPH_SEPARATOR)
        articles.append(Article(id=ids[title], title=title.replace("_", " "), text=PARAGRAPH_SEPARATOR.join(paras), source="SQuAD"))
    questions = []
    for q in rows:
        base = paragraph_offsets[(q.title, q.paragraph_index)]
        spans = tuple((base + s, base + s + len(t)) for t, s in zip(q.answers, q.answer_starts))
        questions.append(GoldQuestion(q.id, q.question, q.answers, ids[q.title], spans))
    return GoldSet(questions, articles)


def _load_jsonl_gold(path: Path) -> GoldSet:
    questions = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise GoldFormatError(f"{path}: not UTF-8 text") from exc
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldFormatError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise GoldFormatError(f"{path}:{n}: expected a JSON object")
        question = obj.get("question")
        if not isinstance(question, str) or not question.strip():
            raise GoldFormatError(f"{path}:{n}: 'question' must be a non-empty string")
        answers = obj.get("answers")
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise GoldFormatError(f"{path}:{n}: 'answers' must be a list of strings ([] = not answerable)")
        article_id = obj.get("article_id")
        questions.append(GoldQuestion(str(obj.get("id", f"line-{n}")), question, tuple(answers),
                                      article_id if isinstance(article_id, str) else None))
    if not questions:
        raise GoldFormatError(f"{path}: no questions in the file")
    return GoldSet(questions, [])
