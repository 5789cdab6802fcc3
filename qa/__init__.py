"""Question answering over news articles: retrieve passages, read out exact answers."""

__version__ = "0.1.0"
