"""Readers of the evaluation-only sources of shared/DATA.md: man pages, Debian's package index."""
