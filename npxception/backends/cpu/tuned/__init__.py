"""The cpu backend's tuned kernels: each a faster arrangement of a plain kernel in ../ (same sums).

Which one runs, for which shapes, and which benchmark justifies it: ../dispatch.py, the only place
that picks a tuned kernel. Each module's docstring says what it speeds up and why.
"""
