"""These tests run only inside the CUDA simulator, in their own process (tests/test_cuda_sim.py).

NUMBA_ENABLE_CUDASIM must be set before numba is first imported, which a shared pytest process
cannot promise; so the main run collects nothing here and starts a separate pytest for it.
"""

import os

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    collect_ignore_glob = ["test_*.py"]
