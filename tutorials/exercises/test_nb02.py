"""Grades the exercises of notebook 2 (run: pytest tutorials/exercises/test_nb02.py)."""

from exercises import checks
from exercises.grading import answers

ANSWERS = answers("nb02")


def test_depthwise_backward_strided():
    checks.check_depthwise_backward_strided(ANSWERS.depthwise_backward_strided)


def test_batch_norm_backward_train():
    checks.check_batch_norm_backward(ANSWERS.batch_norm_backward_train)


def test_softmax_cross_entropy_backward():
    checks.check_softmax_cross_entropy_backward(ANSWERS.softmax_cross_entropy_backward)
