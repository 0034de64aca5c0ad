"""The training corpus built from this machine's allowed sources (scripts/build_corpus.py)."""
