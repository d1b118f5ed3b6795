"""The window index helpers of ../_index.py, compiled for the CPU (inlined into each kernel)."""

from numba import njit

from .. import _index

input_index = njit(cache=True, inline="always")(_index.input_index)
output_index = njit(cache=True, inline="always")(_index.output_index)
