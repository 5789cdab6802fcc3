"""Stage 2, index: `Chunk`s in -> vectors (embedding.py, models from loading.py), a lexical
index (lexical_index.py, over tantivy in tantivy_engine.py; content words in words.py) and the
versioned on-disk store of articles, passages and vectors (store.py over db.py and dense.py) out."""
