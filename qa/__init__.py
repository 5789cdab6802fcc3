"""Question answering over news articles: retrieve passages, read out exact answers."""

import os

# Set before any Hugging Face library is imported: a missing model file then fails fast with
# a clear message instead of trying a model hub that this machine (or a user's) cannot reach.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
