"""Decide on Numba's CUDA simulator before anything imports Numba (notebook 4's exercises)."""

import os
import shutil

if not (os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi")):
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
