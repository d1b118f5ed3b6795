"""Grades the exercises of notebook 6 (run: pytest tutorials/exercises/test_nb06.py)."""

from exercises import checks
from exercises.grading import answers

ANSWERS = answers("nb06")


def test_sgd_step():
    checks.check_sgd_step(ANSWERS.sgd_step)


def test_ema_step():
    checks.check_ema_step(ANSWERS.ema_step)


def test_training_step():
    checks.check_training_step(ANSWERS.training_step)
