"""Metrics: predictions scored against a truth, numpy in and pandas out (no model needed)."""
