"""Grades the exercises of notebook 7 (run: pytest tutorials/exercises/test_nb07.py)."""

from exercises import checks
from exercises.grading import answers

ANSWERS = answers("nb07")


def test_seed_band():
    checks.check_seed_band(ANSWERS.seed_band)


def test_permutation_p_value():
    checks.check_permutation_p_value(ANSWERS.permutation_p_value)
