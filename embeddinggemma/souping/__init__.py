"""Souping: averaging the parameters of checkpoints (ingredients, averages, greedy soup, scores)."""
