"""The window index helpers of ../_index.py, compiled as CUDA device functions.

Declared inline="always" like every device function here (see README.md): Numba inlines them into
each kernel, so they compile with the kernel for the kernel's target.
"""

from numba import cuda

from .. import _index

input_index = cuda.jit(device=True, inline="always")(_index.input_index)
output_index = cuda.jit(device=True, inline="always")(_index.output_index)
