"""A reference variant that dies in a benchmark is recorded as crashed, and the run goes on."""

from __future__ import annotations

import sys

import pytest

from npxception.testing.isolated import ChildResult, run_python

ABORT = [sys.executable, "-c", "import os; os.abort()"]


def test_a_child_killed_by_a_signal_is_a_crash_and_a_python_error_is_not():
    aborted = run_python("import os; os.abort()", timeout=60)
    assert aborted.crashed and aborted.how == "SIGABRT"
    failed = run_python("raise SystemExit(3)", timeout=60)
    assert not failed.crashed and failed.how == "exit status 3"
    assert ChildResult(-11, "", "").how == "SIGSEGV"


def test_bench_model_records_an_aborting_variant_as_crashed_and_times_the_others(monkeypatch, capsys):
    bench_model = pytest.importorskip("benchmarks.bench_model")
    crashing = "torch_idiomatic_channels_last"

    def spawn(kind, case, args):
        if kind == crashing:
            return bench_model.run_worker(ABORT, f"{case} {kind}")
        if kind == "ours_layers":
            return {}
        return {"times": [0.01, 0.011], "peak_mb": 120.0, "base_mb": 100.0}

    monkeypatch.setattr(bench_model, "spawn", spawn)
    monkeypatch.setattr(sys, "argv", ["bench_model.py", "--quick",
                                      "--variants", f"ours,{crashing},torch_idiomatic_nchw"])
    bench_model.main()
    out, err = capsys.readouterr()
    assert f"tiny {crashing}: worker crashed (SIGABRT)" in err
    assert "PyTorch idiomatic channels_last (crashed)" in out
    # the variants after the crash still ran and were compared
    assert "| tiny | PyTorch idiomatic NCHW |" in out and "| tiny | ours (cpu) |" in out


def test_bench_model_keeps_a_crashed_round_beside_finished_ones():
    bench_model = pytest.importorskip("benchmarks.bench_model")
    crashed = bench_model.run_worker(ABORT, "tiny torch_nchw")
    assert crashed["crashed"] == "SIGABRT"
    rounds = [bench_model.round_record(crashed, 16, 0),
              bench_model.round_record({"times": [0.02], "peak_mb": 1.0, "base_mb": 0.5}, 16, 1)]
    row = bench_model.summarise("tiny", "torch_nchw", rounds, 16)
    assert row["rounds_ms"][0] == "crashed" and row["rounds_failed"] == 1
    assert abs(row["step_ms"] - 20.0) < 1e-9


def test_bench_ops_leaves_out_a_layout_whose_probe_aborts_and_times_the_other(monkeypatch):
    bench_ops = pytest.importorskip("benchmarks.bench_ops")
    import numpy as np

    monkeypatch.setattr(bench_ops, "PROBE", "import os\nif '{layout}' == 'channels_last': os.abort()\n")
    x = np.random.default_rng(0).standard_normal((1, 6, 6, 4)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((1, 1, 4, 8)).astype(np.float32)
    ours = {"forward": lambda: None, "input grad": lambda: None, "filter grad": lambda: None}
    rows = bench_ops.run_case("pointwise", "1x6x6x4->8", (ours, (x, w, 1, 0, 1), None), 1, 1.0)
    assert [r["op"] for r in rows] == ["forward", "input grad", "filter grad"]
    for r in rows:
        assert r["torch_channels_last_ms"] == "crashed (SIGABRT)"
        assert isinstance(r["torch_nchw_ms"], float) and r["ratio"] is not None
    table = bench_ops.markdown({"cpu": "x", "threads": 1, "batch": 1, "dtype": "float32", "clock": "wall",
                                "repeats": 1, "bandwidth_gb_s": 1.0, "note": "", "load_average_before": 0,
                                "load_average_after": 0}, rows)
    assert "| crashed (SIGABRT) |" in table
