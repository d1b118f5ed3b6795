"""Moving arrays in and out of the backend: the cpu backend works on NumPy arrays directly, exactly
as the reference does, so it uses the reference's functions."""

from ..reference.arrays import synchronize, to_device, to_numpy, zeros

__all__ = ["synchronize", "to_device", "to_numpy", "zeros"]
