"""The CLI's handling of user mistakes (no models are loaded for these)."""

import pytest

from qa.cli import build_parser, main


def test_every_command_has_help(capsys):
    for command in ["ingest", "index", "search", "ask", "serve", "replica", "eval", "train-reader"]:
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args([command, "--help"])
        assert exc.value.code == 0
        assert "usage: qa " + command in capsys.readouterr().out


def test_rebuild_from_nothing_refuses_and_keeps_the_index(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "index"))
    assert main(["index", "--rebuild", str(tmp_path / "missing")]) == 1
    assert "no articles could be read" in capsys.readouterr().err
    assert not (tmp_path / "index" / "CURRENT").exists()


def test_bad_values_are_clear_errors(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "q", "-k", "0"])
    assert "must be at least 1" in capsys.readouterr().err
    monkeypatch.setenv("QA_CHUNK_OVERLAP", "900")
    with pytest.raises(SystemExit, match="bad QA_"):
        main(["index"])
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"question": "q", "answers": "not a list"}\n')
    monkeypatch.delenv("QA_CHUNK_OVERLAP")
    assert main(["eval", str(gold)]) == 2
    assert "gold.jsonl:1: 'answers'" in capsys.readouterr().err


def test_ask_shows_qa_top_k_answers_unless_told(tmp_path, monkeypatch, capsys):
    import qa.cli
    from qa.config import Settings
    from qa.pipeline import QAPipeline
    from tests.fakes import FakeEmbedder, FakeReader

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for name, year in (("a", 2021), ("b", 2026), ("c", 2031)):
        (seeds / f"{name}.txt").write_text(
            f"Treaty news {name}\nThe treaty is set to expire in {year}, officials said."
        )
    settings = Settings(index_dir=tmp_path / "index", seeds_dir=seeds, no_answer_threshold=0.01, top_k=2)
    pipeline = QAPipeline(settings, FakeEmbedder(), FakeReader())
    pipeline.load_or_build()
    monkeypatch.setattr(qa.cli, "_pipeline", lambda: pipeline)

    def answers_shown(*args):
        assert main(["ask", "When did the treaty expire?", *args]) == 0
        return sum(1 for line in capsys.readouterr().out.splitlines() if line[:1].isdigit())

    assert answers_shown() == 2
    assert answers_shown("-k", "1") == 1
    assert answers_shown("-k", "3") == 3
