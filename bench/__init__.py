"""Reproducible performance figures for trustspace, each beside a same-run baseline.

``make bench`` (``python -m bench``) runs them all; ``python -m bench NAME`` runs one and
``--quick`` runs them at small sizes. See BENCHMARKS.md for the latest figures.
"""
