"""Grades the exercises of notebook 9 (run: pytest tutorials/exercises/test_nb09.py)."""

from exercises import checks
from exercises.grading import answers

ANSWERS = answers("nb09")


def test_roofline_point():
    checks.check_roofline_point(ANSWERS.roofline_point)


def test_bn_relu_rows():
    checks.check_bn_relu_rows(ANSWERS.bn_relu_rows)


def test_pointwise_chunked():
    checks.check_pointwise_chunked(ANSWERS.pointwise_chunked)


def test_channel_sums():
    checks.check_channel_sums(ANSWERS.channel_sums)
