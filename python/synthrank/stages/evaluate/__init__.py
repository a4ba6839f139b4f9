"""Rerank the same first-stage lists with each system; metrics, significance tests and the report."""
