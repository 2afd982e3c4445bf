"""Baselines measured in the same run as the product: each is the least a job can cost.

``ideal_pipeline`` is the straight-line secure pipeline (its shape copied from the
reference the issue names), ``raw_grpc`` is transport with no security or storage at all,
``raw_store`` is SQLite and SHA-256 with nothing around them.
"""
