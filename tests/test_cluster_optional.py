"""Ray stays optional: the default commands and the app never import it, and `--ray` without the
cluster extra is a clear error given before any work (no models are loaded for these)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qa.cli import main
from tests.servers import ROOT


def test_the_default_commands_and_the_app_never_import_ray() -> None:
    code = (
        "import sys, qa.cli, qa.pipeline, qa.serve.app, qa.cluster; "
        "qa.cli.build_parser().parse_args(['ingest', 'x.jsonl', '--ray']); "
        "assert 'ray' not in sys.modules, 'ray was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "argv", [["ingest", "x.jsonl", "--ray"], ["serve", "--ray", "10.0.0.1:6379", "--replicas", "2"]]
)
def test_ray_without_the_extra_says_how_to_install_it(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if Ray were not installed
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "index"))
    assert main(argv) == 2
    assert "pip install -e '.[cluster]'" in capsys.readouterr().err
    assert not (tmp_path / "index").exists()  # refused before any work


def test_an_article_path_after_ray_is_not_taken_for_an_address(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "index"))
    assert main(["ingest", "--ray", "a.jsonl", "b.jsonl"]) == 2
    assert "'a.jsonl' is not a cluster address" in capsys.readouterr().err
    assert not (tmp_path / "index").exists()
