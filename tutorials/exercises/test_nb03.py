"""Grades the exercises of notebook 3 (run: pytest tutorials/exercises/test_nb03.py)."""

from exercises import checks
from exercises.grading import answers

ANSWERS = answers("nb03")


def test_input_grad_gather():
    checks.check_input_grad_gather(ANSWERS.input_grad_gather)


def test_filter_grad_by_channel():
    checks.check_filter_grad_by_channel(ANSWERS.filter_grad_by_channel)
