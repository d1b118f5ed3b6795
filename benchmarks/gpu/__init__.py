"""The pieces of `benchmarks/gpu_check.py`, one stage per module; nothing runs at import.

- context.py: `Run` (options, budget, results, guarded stages) and `guarded` for one row;
- cases.py: Xception's layer shapes as `npxception.testing.cases.Case`s;
- device.py: versions and the device ("device");
- correctness.py: every op against the NumPy reference ("ops");
- train_step.py, copies.py: a training step against PyTorch and timm, copies per step ("train_step");
- cli_run.py: `npxception train` + `npxception evaluate` ("cli_train", "cli_train_cpu");
- sgemm.py: copy bandwidth ("bandwidth") and the SGEMM against cuBLAS ("sgemm");
- timing.py, torch_ref.py, timers.py: every op against cuDNN/cuBLAS ("timings");
- report.py: gpu_check.json and gpu_check.md.
"""
