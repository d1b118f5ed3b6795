"""Grades the exercises of notebook 4 (run: pytest tutorials/exercises/test_nb04.py)."""

from exercises import checks
from exercises.grading import answers

ANSWERS = answers("nb04")


def test_axpy():
    checks.check_axpy(ANSWERS.axpy_kernel)


def test_filter_grad_cuda():
    checks.check_filter_grad_cuda(ANSWERS.filter_grad_kernel)
