"""The training corpus built from declared sources only: pinned wheels and listed gettext catalogs
(scripts/build_corpus.py)."""
