"""Solutions to the tutorials' "your turn" exercises, one module per notebook.

`tutorials/exercises/` holds the same functions with their bodies cut out (written from these
files by `python tutorials/build_notebooks.py`); the notebooks show them blank too, and
`run_all.py --solutions` (and the test suite) runs these in their place.
"""
