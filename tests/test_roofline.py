"""benchmarks/roofline.py: the layer shapes it derives, its counting rules, its report, its smoke run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import roofline  # noqa: E402
from roofline_report import derived  # noqa: E402
from npxception import Xception, XceptionConfig, nn  # noqa: E402


def test_leaf_shapes_are_the_shapes_a_forward_sees():
    config = XceptionConfig.tiny()
    model = Xception(config, backend="numpy", seed=0)
    seen = {}
    layers = list(model.network.compute_layers())  # the leaves, each BatchNorm + ReLU pair as one
    assert any(isinstance(layer, nn.BatchNormReLU) for layer in layers)
    for layer in layers:
        def record(x, training, layer=layer, forward=layer.forward):
            seen[layer.name] = tuple(x.shape[1:])
            return forward(x, training)
        layer.forward = record
    model.forward(np.zeros((2, *config.input_shape), np.float32), training=False)
    walked = list(roofline.leaf_shapes(model.network, config.input_shape))
    assert [layer.name for layer, _, _ in walked] == [layer.name for layer in layers]
    assert {leaf.name: shape for leaf, shape, _ in walked} == seen


def test_pointwise_shapes_of_small():
    # small(): 32x32, stride-1 stem (valid 3x3 twice -> 28x28), widths x 0.25, two middle blocks.
    got = [(s["rows"], s["k"], s["c"], len(s["layers"])) for s in roofline.pointwise_shapes(XceptionConfig.small(), 64)]
    assert got == [(64 * 28 * 28, 16, 32, 1), (64 * 28 * 28, 32, 32, 1), (64 * 14 * 14, 32, 64, 1),
                   (64 * 14 * 14, 64, 64, 1), (64 * 7 * 7, 64, 182, 1), (64 * 7 * 7, 182, 182, 1),
                   (64 * 4 * 4, 182, 182, 7), (64 * 4 * 4, 182, 256, 1), (64 * 2 * 2, 256, 384, 1),
                   (64 * 2 * 2, 384, 512, 1)]


def test_counting_rules():
    rng = np.random.default_rng(0)
    conv = nn.Conv2D("c", 3, 8, 3, rng=rng, backend="numpy")
    work = roofline.layer_work(conv, (10, 10, 3), (8, 8, 8), batch=2)
    assert work["flops"]["forward"] == 2 * 2 * 8 * 8 * 3 * 3 * 3 * 8
    assert work["flops"]["backward"] == 2 * work["flops"]["forward"]
    n_in, n_out, weights = 2 * 300, 2 * 512, 3 * 3 * 3 * 8
    assert work["bytes"] == {"forward": 4 * (n_in + n_out + weights), "backward": 4 * (n_out + 2 * n_in + 2 * weights)}
    bn = roofline.layer_work(nn.BatchNorm("b", 8, backend="numpy"), (4, 4, 8), (4, 4, 8), batch=3)
    assert bn["flops"] == {"forward": 5 * 3 * 128, "backward": 9 * 3 * 128}
    assert bn["bytes"]["forward"] == 4 * (2 * 3 * 128 + 4 * 8)  # gamma, beta and both moving statistics
    pool = roofline.layer_work(nn.MaxPool2D("p", 3, stride=2, padding="same", backend="numpy"),
                               (8, 8, 2), (4, 4, 2), batch=1)
    assert pool["flops"] == {"forward": 8 * 32, "backward": 9 * 32}


def test_roofline_bounds():
    roof = {"peak_gflops": 100.0, "bandwidth_gb_per_s": 10.0, "ridge_flops_per_byte": 10.0}
    memory = derived(1e-3, flops=1e6, nbytes=1e6, roof=roof)  # 1 flop/byte: 0.1 ms to move the bytes
    assert memory["bound"] == "memory" and memory["roofline_ms"] == pytest.approx(0.1)
    assert memory["over_roofline"] == pytest.approx(10.0) and memory["of_bandwidth"] == pytest.approx(0.1)
    compute = derived(1e-3, flops=1e8, nbytes=1e6, roof=roof)  # 100 flops/byte: 1 ms of FMAs
    assert compute["bound"] == "compute" and compute["roofline_ms"] == pytest.approx(1.0)
    assert compute["of_peak"] == pytest.approx(1.0)


def test_quick_run_reports_and_writes_nothing():
    results = ROOT / "benchmarks" / "results"
    before = {p.name: p.stat().st_mtime_ns for p in results.iterdir()} if results.exists() else {}
    done = subprocess.run([sys.executable, "benchmarks/roofline.py", "--quick"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for part in ("## The machine", "## Pointwise GEMMs of `tiny`", "## One `tiny` training step", "block14_sepconv2"):
        assert part in done.stdout
    after = {p.name: p.stat().st_mtime_ns for p in results.iterdir()} if results.exists() else {}
    assert after == before
