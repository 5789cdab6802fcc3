"""Reading SQuAD-format files (v1.1 and v2.0) into flat, typed records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from qa.errors import QAError

# A SQuAD article as one document (`qa eval`, hard negatives): its paragraphs, blank-line separated.
PARAGRAPH_SEPARATOR = "\n\n"


class SquadFormatError(QAError, ValueError):
    """The file is not a SQuAD JSON file; the message names the field that is wrong."""


@dataclass(frozen=True)
class SquadQuestion:
    id: str
    question: str
    context: str
    title: str
    article_index: int  # position of its entry in `data`: entries may share a title
    paragraph_index: int
    answers: tuple[str, ...]
    answer_starts: tuple[int, ...]

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


_T = TypeVar("_T")


def _require(obj: object, key: str, kind: type[_T], where: str) -> _T:
    """`obj[key]`, checked to be a `kind` (JSON: dict, list, str, int)."""
    if not isinstance(obj, dict) or key not in obj:
        raise SquadFormatError(f"{where}: missing field '{key}'")
    value = obj[key]
    if not isinstance(value, kind):
        raise SquadFormatError(f"{where}.{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def load_squad(path: str | Path) -> list[SquadQuestion]:
    """All questions of a SQuAD file, in file order. Unanswerable v2.0 questions have no answers."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SquadFormatError(f"{path}: not valid UTF-8 JSON ({exc})") from exc
    articles = _require(raw, "data", list, "top level")
    out: list[SquadQuestion] = []
    for a, article in enumerate(articles):
        where_a = f"data[{a}]"
        title = str(article.get("title", f"article {a}")) if isinstance(article, dict) else ""
        paragraphs = _require(article, "paragraphs", list, where_a)
        for p, paragraph in enumerate(paragraphs):
            where_p = f"{where_a}.paragraphs[{p}]"
            context = _require(paragraph, "context", str, where_p)
            qas = _require(paragraph, "qas", list, where_p)
            for q, qa in enumerate(qas):
                where_q = f"{where_p}.qas[{q}]"
                question = _require(qa, "question", str, where_q)
                answers = qa.get("answers", []) if isinstance(qa, dict) else []
                if not isinstance(answers, list):
                    raise SquadFormatError(f"{where_q}.answers: expected list")
                if qa.get("is_impossible"):
                    answers = []
                texts, starts = [], []
                for n, ans in enumerate(answers):
                    texts.append(_require(ans, "text", str, f"{where_q}.answers[{n}]"))
                    starts.append(int(_require(ans, "answer_start", int, f"{where_q}.answers[{n}]")))
                out.append(
                    SquadQuestion(
                        id=str(qa.get("id", f"{a}-{p}-{q}")),
                        question=question,
                        context=context,
                        title=title,
                        article_index=a,
                        paragraph_index=p,
                        answers=tuple(texts),
                        answer_starts=tuple(starts),
                    )
                )
    return out


def article_paragraphs(questions: list[SquadQuestion]) -> dict[int, list[str]]:
    """Each entry's paragraphs in file order (article_index -> paragraphs), rebuilt from its
    questions; a paragraph without questions is an empty string, so indexes stay those of the
    file. Entries are keyed by position, not title: converted files (MRQA, NewsQA) often give
    many different stories one title, and keying by it would mix their paragraphs."""
    bodies: dict[int, list[str]] = {}
    for q in questions:
        paras = bodies.setdefault(q.article_index, [])
        if q.paragraph_index >= len(paras):
            paras.extend([""] * (q.paragraph_index + 1 - len(paras)))
        paras[q.paragraph_index] = q.context
    return bodies
