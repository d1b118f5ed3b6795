"""Your turn: write each function in place of its `raise NotImplementedError`, then grade it
with `pytest tutorials/exercises/test_nb07.py`. Written from tutorials/solutions/nb07.py by
build_notebooks.py (rebuilding overwrites this file: keep your answers elsewhere if you rebuild)."""
# ruff: noqa: F401  (the solutions' imports stay, for your code to use)

import itertools

import numpy as np


def seed_band(runs):
    """Mean and sample standard deviation (ddof=1) over seeds, per epoch: runs (seeds, epochs)."""
    raise NotImplementedError("your turn")


def permutation_p_value(a, b):
    """One-sided exact permutation test of "a is larger than b" for two small samples.

    Pool the values, and over every way of choosing len(a) of them as the "a" group, count how
    often mean(a') - mean(b') is at least the observed mean(a) - mean(b); return that fraction.
    """
    raise NotImplementedError("your turn")
