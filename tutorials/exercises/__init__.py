"""Your answers to the tutorials' "your turn" exercises, one module per notebook, and their checks.

Write each function in place of its `raise NotImplementedError`, then grade yourself from the
repository root:

    pytest tutorials/exercises             # every exercise
    pytest tutorials/exercises/test_nb02.py  # one notebook's

`NPXCEPTION_SOLUTIONS=1 pytest tutorials/exercises` grades `tutorials/solutions/` instead.
"""
