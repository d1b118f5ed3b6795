"""Notebook 7: summarizing seeds and an exact permutation test for a handful of runs."""

import itertools

import numpy as np


def seed_band(runs):
    """Mean and sample standard deviation (ddof=1) over seeds, per epoch: runs (seeds, epochs)."""
    # BEGIN SOLUTION
    runs = np.asarray(runs, dtype=float)
    return runs.mean(axis=0), runs.std(axis=0, ddof=1)
    # END SOLUTION


def permutation_p_value(a, b):
    """One-sided exact permutation test of "a is larger than b" for two small samples.

    Pool the values, and over every way of choosing len(a) of them as the "a" group, count how
    often mean(a') - mean(b') is at least the observed mean(a) - mean(b); return that fraction.
    """
    # BEGIN SOLUTION
    pooled = np.concatenate([np.asarray(a, dtype=float), np.asarray(b, dtype=float)])
    observed = np.mean(a) - np.mean(b)
    hits = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        mask = np.zeros(len(pooled), dtype=bool)
        mask[list(chosen)] = True
        gap = pooled[mask].mean() - pooled[~mask].mean()
        hits += gap >= observed - 1e-12          # ties with the observed split count as hits
        total += 1
    return hits / total
    # END SOLUTION
