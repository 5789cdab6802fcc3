"""Where the files that ship with the program are: the chat page (web/), the bundled articles
(seeds/) and the default index folder.

A wheel carries web/ and seeds/ inside the package as qa/web and qa/seeds (pyproject.toml maps
them there); a source checkout (`make run`, `make test`, `pip install -e .`) keeps them beside
the package, where they are edited.
"""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_data_path

PACKAGE_DIR = Path(__file__).resolve().parent
INSTALLED = (PACKAGE_DIR / "web").is_dir()
_DATA_ROOT = PACKAGE_DIR if INSTALLED else PACKAGE_DIR.parent

WEB_DIR = _DATA_ROOT / "web"
SEEDS_DIR = _DATA_ROOT / "seeds"


def default_index_dir() -> Path:
    """index/ of the checkout; installed, the user's data folder (~/.local/share/newsqa/index on
    Linux), so that every `qa` command finds the same index whichever folder it is run from."""
    return user_data_path("newsqa") / "index" if INSTALLED else PACKAGE_DIR.parent / "index"
