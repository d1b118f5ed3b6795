"""A numerical gradient checker for any op or layer, in the vector-Jacobian form.

For an output y = f(inputs) and a fixed upstream gradient dy, the scalar L = sum(f(inputs) * dy) has
dL/d(input) = the vector-Jacobian product that a backward pass returns. Each sampled element i of
an input is checked by central differences:

    numeric_i = (L(x + h e_i) - L(x - h e_i)) / (2 h)          error O(h^2)

and compared with the analytic gradient by a relative error with a floor,
|a - n| / max(|a|, |n|, floor * max|analytic|), so elements far smaller than the rest of their
gradient (where rounding in L dominates) do not blow up the ratio.

Traps this avoids (each one has bitten real implementations):
- float32 is too coarse: with h = 1e-6 the difference L(x+h) - L(x-h) drowns in rounding. Inputs are
  checked in float64 (a float32 input is an error, not a silent pass).
- an all-ones dy hides bugs: batch norm's output sums to a constant over the batch (the mean is
  subtracted), so with dy = 1 the true input gradient is zero and a wrong one can be zero too. dy
  here is random and non-uniform.
- kinks: max pool with tied inputs, or ReLU at exactly 0, has no derivative; checks use random
  inputs, where ties have probability zero, and `h` is far below the gaps between values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = ["GradcheckReport", "gradcheck"]


@dataclass
class GradcheckReport:
    """Per checked input: the worst relative error, where it was, and how many elements were checked."""

    errors: dict[str, float] = field(default_factory=dict)
    worst_index: dict[str, tuple] = field(default_factory=dict)
    checked: dict[str, int] = field(default_factory=dict)

    def ok(self, tol: float = 1e-6) -> bool:
        return all(err <= tol for err in self.errors.values())

    def assert_ok(self, tol: float = 1e-6) -> GradcheckReport:
        bad = {k: v for k, v in self.errors.items() if not v <= tol}
        if bad:
            raise AssertionError(f"gradient check failed (tol {tol:.1e}):\n{self}")
        return self

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    def __str__(self) -> str:
        rows = [f"{'input':<16} {'checked':>8} {'max rel error':>14}  worst at"]
        for name, err in self.errors.items():
            rows.append(f"{name:<16} {self.checked[name]:>8} {err:>14.3e}  {self.worst_index[name]}")
        return "\n".join(rows)


def _as_float64(name: str, a) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.float64:
        raise TypeError(f"gradcheck needs float64 inputs (float32 is too coarse for finite "
                        f"differences); input {name!r} has dtype {a.dtype}")
    return a.copy()


def gradcheck(
    f: Callable[..., np.ndarray],
    inputs: Mapping[str, np.ndarray],
    backward: Callable[..., Mapping[str, np.ndarray]],
    *,
    wrt: list[str] | None = None,
    seed: int = 0,
    eps: float = 1e-5,
    max_samples: int = 32,
    floor: float = 1e-6,
) -> GradcheckReport:
    """Compare `backward` with central differences of `f`.

    f(**inputs) -> array (or scalar); backward(dy, **inputs) -> {name: gradient}. `wrt` names the
    inputs to check (default: all). At most `max_samples` elements per input are perturbed (all of
    them if the input is smaller), chosen at random but reproducibly from `seed`.
    """
    inputs = {name: _as_float64(name, a) for name, a in inputs.items()}
    wrt = list(inputs) if wrt is None else list(wrt)
    unknown = [name for name in wrt if name not in inputs]
    if unknown:
        raise ValueError(f"wrt names {unknown} that are not among the inputs {list(inputs)}")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    rng = np.random.default_rng(seed)

    y = np.asarray(f(**inputs), dtype=np.float64)
    # Random, non-uniform dy in [0.5, 1.5) with random signs: no cancellation, no symmetry.
    dy = rng.uniform(0.5, 1.5, size=y.shape) * rng.choice([-1.0, 1.0], size=y.shape)
    analytic = backward(dy if y.shape else float(dy), **{k: v.copy() for k, v in inputs.items()})

    def loss(**args) -> float:
        # fsum sums exactly: the outputs a perturbation does not touch cancel exactly between
        # L(x + h) and L(x - h), so rounding comes only from the few outputs it does touch.
        return math.fsum((np.asarray(f(**args), dtype=np.float64) * dy).ravel().tolist())

    report = GradcheckReport()
    for name in wrt:
        x = inputs[name]
        grad = np.asarray(analytic[name], dtype=np.float64)
        if grad.shape != x.shape:
            raise ValueError(f"backward returned a gradient of shape {grad.shape} for {name!r}, "
                             f"whose shape is {x.shape}")
        scale = float(np.max(np.abs(grad), initial=0.0))
        n = x.size
        picks = rng.choice(n, size=min(n, max_samples), replace=False)
        worst, worst_at = 0.0, ()
        for flat in picks:
            idx = np.unravel_index(int(flat), x.shape)
            orig = x[idx]
            x[idx] = orig + eps
            plus = loss(**inputs)
            x[idx] = orig - eps
            minus = loss(**inputs)
            x[idx] = orig
            numeric = (plus - minus) / (2 * eps)
            a = grad[idx]
            err = abs(a - numeric) / max(abs(a), abs(numeric), floor * scale, 1e-300)
            if not err <= worst:  # also catches NaN
                worst, worst_at = err, tuple(int(i) for i in idx)
        report.errors[name] = float(worst)
        report.worst_index[name] = worst_at
        report.checked[name] = len(picks)
    return report
