"""Grades the exercises of notebook 5 (run: pytest tutorials/exercises/test_nb05.py)."""

from exercises import checks
from exercises.grading import answers

ANSWERS = answers("nb05")


def test_same_padding():
    checks.check_same_padding(ANSWERS.same_padding)


def test_xception_params():
    checks.check_xception_params(ANSWERS.xception_params)
