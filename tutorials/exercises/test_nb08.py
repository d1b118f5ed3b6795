"""Grades the exercises of notebook 8 (run: pytest tutorials/exercises/test_nb08.py)."""

from exercises import checks
from exercises.grading import answers

ANSWERS = answers("nb08")


def test_ring_allreduce():
    checks.check_ring_allreduce(ANSWERS.ring_allreduce)


def test_allreduce_seconds():
    checks.check_allreduce_seconds(ANSWERS.allreduce_seconds)


def test_combine_statistics():
    checks.check_combine_statistics(ANSWERS.combine_statistics)
