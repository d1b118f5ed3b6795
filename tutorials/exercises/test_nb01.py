"""Grades the exercises of notebook 1 (run: pytest tutorials/exercises/test_nb01.py)."""

from exercises import checks
from exercises.grading import answers

ANSWERS = answers("nb01")


def test_cost_ratio():
    checks.check_cost_ratio(ANSWERS.cost_ratio)


def test_depthwise_strided():
    checks.check_depthwise_strided(ANSWERS.depthwise_strided)


def test_separable_kernel():
    checks.check_separable_kernel(ANSWERS.separable_kernel)
