"""Builders of tiny offline models in the real hub layout.

Used by the tests, the benchmarks, and by anyone who wants to try the pipeline without a GPU
or a hub account. Random models say nonsense: they exercise the plumbing, not the quality.
"""
