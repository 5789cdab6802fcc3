"""Stage 2, index: `Chunk`s in -> vectors (embedding.py), a lexical index (lexical.py) and the
versioned on-disk store of articles, passages and vectors (store.py) out."""
