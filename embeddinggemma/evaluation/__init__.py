"""Evaluation: the offline MTEB-style suite, its metrics, the MTEB adapter and the evaluate command."""
