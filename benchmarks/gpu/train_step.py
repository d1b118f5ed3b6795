"""Stage "train_step": one full training step of Xception, ours against PyTorch on the same GPU.

A step: forward in training mode, softmax cross-entropy, backward, SGD with momentum 0.9 and weight
decay 1e-5 (the trainer's optimizer). Ours is timed with CUDA events on inputs already on the
device, as PyTorch's are; dropout is 0 for every contender (timm's legacy_xception has none).
Against:
- the PyTorch twin (npxception/testing/torch_xception.py: the same network, our weights loaded,
  "same" padding by explicit F.pad), strict float32 and PyTorch's defaults;
- for the paper network, timm's `legacy_xception` when timm is importable (symmetric padding, its
  own weights), strict, defaults, and defaults in channels_last.
`speedup_vs_*` is their time over ours (above 1: ours is faster).

Copies: one more step runs as the trainer runs it (upload the batch, compute, read back the loss and
the logits) under a `CopyCounter`; `copies_only_at_batch_boundaries` is True when the compute phase
made no host <-> device copy at either level.
"""

from __future__ import annotations

import time

import numpy as np

from npxception.testing.compare import rel_error

from .context import guarded
from .copies import CopyCounter
from .timers import median_ms, set_torch_precision, timers


def presets(run) -> list:
    """(label, config, batch) of the networks to step."""
    from npxception import XceptionConfig

    if run.sim or run.backend != "cuda":
        return [("tiny 8x8", XceptionConfig.tiny(input_shape=(8, 8, 3), middle_blocks=0, dropout=0.0), 2)]
    return [("paper", XceptionConfig.paper(dropout=0.0), run.options.get("train_batch", 16)),
            ("small", XceptionConfig.small(dropout=0.0), 64)]


def our_step(run, cfg, x, labels, row: dict):
    """Time our step and count its copies; returns (model, device x) for the comparisons."""
    from npxception import Xception
    from npxception.train.optimizers import make_optimizer

    model = Xception(cfg, backend=run.backend, seed=0, dtype="float32")
    be = model.backend
    opt = make_optimizer("sgd", be, momentum=0.9, weight_decay=1e-5)

    def compute(xd, yd):
        logits = model.forward(xd, True)
        loss = be.softmax_cross_entropy(logits, yd, 0.0)
        model.backward(be.softmax_cross_entropy_backward(1.0, logits, yd, 0.0))
        opt.step(model.trainable(), 0.01)
        return logits, loss

    counter = CopyCounter(be, run.sim)
    for step in range(1 if run.sim else 2):   # the first (compiling) step uncounted on a GPU
        counting = step == (0 if run.sim else 1)
        t0 = time.perf_counter()
        with counter if counting else _nothing():
            with counter.phase("upload"):
                xd, yd = be.to_device(x), be.to_device(labels)
            t1 = time.perf_counter()
            with counter.phase("compute"):
                logits, loss = compute(xd, yd)
                be.synchronize()
            t2 = time.perf_counter()
            with counter.phase("download"):
                loss_value = float(be.to_numpy(loss))
                be.to_numpy(logits)
        if step == 0:
            row.update(first_loss=loss_value, first_step_s_incl_compile=round(time.perf_counter() - t0, 3),
                       ours_ms=(t2 - t1) * 1e3)
    if be.name == "cuda":
        copies = counter.summary()
        row["copies_per_step"] = copies
        row["copies_only_at_batch_boundaries"] = not any(copies.get("compute", {}).values())
    if not run.sim:
        ours_timer, _ = timers(True)
        runs = 5 if cfg.input_shape[0] > 100 else 10
        row["ours_ms"] = median_ms(lambda: compute(xd, yd), ours_timer, warmup=1, min_runs=runs, max_runs=runs)
    row["ours_images_per_s"] = len(labels) / row["ours_ms"] * 1e3
    return model, xd


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def torch_step_ms(run, forward, params, xt, yt) -> float:
    """Median ms of a PyTorch SGD step (momentum 0.9, weight decay 1e-5) of `forward` on (xt, yt)."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-5)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(forward(xt), yt).backward()
        opt.step()

    _, torch_timer = timers(not run.sim)
    runs = 5 if xt.shape[2] > 100 else 10
    return median_ms(step, torch_timer, **run.timing(warmup=2, min_runs=runs, max_runs=runs))


def _compare(run, label: str, forward, params, xt, yt, ours_ms: float, row: dict, channels_last=False) -> None:
    import torch

    modes = [(True, "strict"), (False, "default")] + ([(False, "default_channels_last")] if channels_last else [])
    for strict, mode in modes:
        set_torch_precision(strict)
        x = xt
        if mode.endswith("channels_last"):   # the last mode: the module stays converted
            forward.to(memory_format=torch.channels_last)
            x = xt.contiguous(memory_format=torch.channels_last)
        ms, err = guarded(torch_step_ms, run, forward, params, x, yt)
        row[f"{label}_{mode}_ms"] = ms
        if err:
            row[f"{label}_{mode}_error"] = err
        elif ms:
            row[f"speedup_vs_{label}_{mode}"] = ms / ours_ms
    set_torch_precision(True)


def step_row(run, name: str, cfg, batch: int) -> dict:
    import torch

    from npxception.testing.torch_xception import TorchXception

    h, w, c = cfg.input_shape
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch, h, w, c)).astype(np.float32)
    labels = rng.integers(0, cfg.num_classes, batch).astype(np.int64)
    row = {"preset": name, "batch": batch, "input": [h, w, c]}
    model, xd = our_step(run, cfg, x, labels, row)
    dev = run.torch_device
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(dev)
    yt = torch.from_numpy(labels).to(dev)

    twin = TorchXception(cfg, dtype=torch.float32).to(dev)
    twin.load_our_state_dict(model.state_dict())
    set_torch_precision(True)
    with torch.no_grad():   # the same weights: the inference logits must agree
        ours = model.backend.to_numpy(model.forward(xd, False))
        row["logits_rel_error_vs_twin"] = rel_error(ours, twin(xt, False).cpu().numpy())
    _compare(run, "twin", lambda t: twin(t, True), list(twin.parameters()), xt, yt, row["ours_ms"], row)

    if cfg.input_shape == (299, 299, 3) and cfg.num_classes == 1000:
        try:
            import timm
        except ImportError as exc:
            row["timm"] = f"not importable: {exc}"
        else:
            net = timm.create_model("legacy_xception", pretrained=False, num_classes=1000).to(dev)
            row["timm_version"] = timm.__version__
            _compare(run, "timm", net, list(net.parameters()), xt, yt, row["ours_ms"], row, channels_last=True)
            del net
    return row


def stage(run) -> dict:
    rows = []
    for name, cfg, batch in presets(run):
        if run.left() < run.options.get("train_step_needs_s", 30.0):
            rows.append({"preset": name, "skipped": "budget"})
            continue
        row, err = guarded(step_row, run, name, cfg, batch)
        row = row or {"preset": name, "error": err}
        rows.append(row)
        print("  " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
                               if k != "copies_per_step"), flush=True)
        print(f"  copies per step: {row.get('copies_per_step')}", flush=True)
    return {"rows": rows}
