"""The command line: one-line errors, and a tiny end-to-end train -> evaluate -> predict."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from npxception.cli import main
from npxception.data import make_shapes

TINY = ["--preset", "tiny", "--backend", "numpy", "--image-size", "16", "--train-size", "60",
        "--val-size", "30", "--batch-size", "20", "--quiet"]


def _error_line(capsys, argv) -> str:
    """Run the CLI expecting a failure; return its single stderr line."""
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished 2-epoch tiny run (numpy backend) with Polyak averaging."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", *TINY, "--epochs", "2", "--ema-decay", "0.9", "--out", str(out)]) == 0
    return out


def test_train_leaves_checkpoint_metrics_and_plots(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {"checkpoint.npz", "metrics.jsonl", "learning_curves.png", "confusion_matrix.png"} <= names


def test_evaluate_reproduces_the_final_validation_metrics(run_dir, capsys):
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["top1"] == last["val_top1"] and result["top5"] == last["val_top5"]
    assert result["loss"] == pytest.approx(last["val_loss"], rel=1e-6)
    assert result["count"] == 30 and np.sum(result["confusion"]) == 30


def test_evaluate_an_npz_run_uses_its_held_out_images(tmp_path, capsys):
    data = make_shapes(50, 16, seed=3)
    np.savez(tmp_path / "data.npz", images=data.images, labels=data.labels)
    out = tmp_path / "run"
    argv = ["train", "--dataset", "npz", "--data-path", str(tmp_path / "data.npz"), "--val-size", "15",
            "--preset", "tiny", "--backend", "numpy", "--batch-size", "10", "--epochs", "1", "--quiet"]
    assert main([*argv, "--out", str(out)]) == 0
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 15 and result["top1"] == last["val_top1"]


def test_evaluate_on_another_dataset(run_dir, tmp_path, capsys):
    data = make_shapes(12, 16, seed=9)
    np.savez(tmp_path / "other.npz", images=data.images, labels=data.labels)
    assert main(["evaluate", str(run_dir / "checkpoint.npz"), "--dataset", "npz",
                 "--data-path", str(tmp_path / "other.npz")]) == 0
    assert capsys.readouterr().out.startswith("npz: 12 images, loss ")
    np.savez(tmp_path / "big.npz", images=make_shapes(4, 20).images, labels=np.zeros(4, int))
    err = _error_line(capsys, ["evaluate", str(run_dir), "--dataset", "npz", "--data-path",
                               str(tmp_path / "big.npz")])
    assert "the model takes (16, 16, 3) images; the dataset has (20, 20, 3)" in err


def test_predict_prints_top_k(run_dir, tmp_path, capsys):
    paths = []
    for i, image in enumerate(make_shapes(2, 24, seed=5).images):  # resized to 16x16 on reading
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    assert main(["predict", str(run_dir), *paths, "--top-k", "2", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["image"] for line in lines] == paths
    assert all(len(line["top"]) == 2 and line["top"][0]["probability"] >= line["top"][1]["probability"]
               for line in lines)
    err = _error_line(capsys, ["predict", str(run_dir), str(tmp_path / "missing.png")])
    assert "missing.png: no such file" in err


def test_ctrl_c_then_resume_matches_the_uninterrupted_run(run_dir, tmp_path, monkeypatch, capsys):
    from npxception.models.xception import Xception
    from npxception.train import load_checkpoint

    forward, calls = Xception.forward, []

    def forward_with_ctrl_c(self, x, training):
        if training:
            calls.append(1)
            if len(calls) == 4:  # epoch 2, batch 1 of 3
                # raise_signal delivers to this thread before it returns, so the handler runs here,
                # inside this step, however long a kernel compilation before it took.
                signal.raise_signal(signal.SIGINT)
        return forward(self, x, training)

    monkeypatch.setattr(Xception, "forward", forward_with_ctrl_c)
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--ema-decay", "0.9", "--out", str(out)]) == 130
    assert f"Continue with: npxception train --resume {out}" in capsys.readouterr().err
    monkeypatch.setattr(Xception, "forward", forward)
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    (expected, _), (resumed, _) = load_checkpoint(run_dir), load_checkpoint(out)
    for group in expected:
        for key, value in expected[group].items():
            np.testing.assert_array_equal(resumed[group][key], value, err_msg=f"{group}/{key}")


def test_finished_and_existing_runs_are_refused(run_dir, capsys):
    assert "already finished its 2 epochs" in _error_line(capsys, ["train", "--resume", str(run_dir)])
    err = _error_line(capsys, ["train", *TINY, "--out", str(run_dir)])
    assert "already holds a run; continue it with --resume" in err


@pytest.mark.parametrize("argv, message", [
    (["train", "--dataset", "npz", "--data-path", "/no/such/file.npz"], "/no/such/file.npz: no such file"),
    (["train", "--dataset", "cifar10"], "--dataset cifar10 needs --data-dir"),
    (["train", "--dataset", "cifar10", "--data-dir", "/no/such/dir"], "/no/such/dir: no such directory"),
    (["evaluate", "/no/such/run"], "/no/such/run: no such checkpoint file"),
    (["train", "--epochs", "0"], "--epochs must be >= 1, got 0"),
])
def test_errors_are_one_line(capsys, tmp_path, argv, message):
    argv = [a.replace("/no/such", str(tmp_path / "no" / "such")) for a in argv]
    assert message.replace("/no/such", str(tmp_path / "no" / "such")) in _error_line(capsys, argv)


def test_bad_labels_in_an_npz_are_one_line(capsys, tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((4, 16, 16, 3), np.uint8), labels=np.array([0, 1, 2, -1]))
    err = _error_line(capsys, ["train", "--dataset", "npz", "--data-path", str(tmp_path / "d.npz")])
    assert "labels must be in [0, 3)" in err


def test_summary_and_module_entry_point(capsys):
    assert main(["summary", "--preset", "tiny"]) == 0
    assert "block14_sepconv2" in capsys.readouterr().out
    done = subprocess.run([sys.executable, "-m", "npxception", "evaluate", "nowhere"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 1 and done.stderr.startswith("npxception evaluate: error: ")


def test_gradcheck_prints_every_op_and_layer(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    for name in ("separable_conv2d", "softmax_cross_entropy", "BatchNorm training", "Residual block"):
        assert name in out
    assert out.rstrip().endswith("all gradients agree")


def test_train_options_and_defaults_come_from_train_config():
    """One place for a training default: every TrainConfig field is a flag whose default is small()'s."""
    import dataclasses

    from npxception.cli.parser import build_parser
    from npxception.cli.train import train_config
    from npxception.train import TrainConfig

    args = build_parser().parse_args(["train"])
    assert train_config(args) == TrainConfig.small()
    args = build_parser().parse_args(["train", "--eval-batch-size", "7", "--no-augment", "--decay-rate", "0.5"])
    assert dataclasses.asdict(train_config(args)) == {**dataclasses.asdict(TrainConfig.small()),
                                                      "eval_batch_size": 7, "augment": False, "decay_rate": 0.5}


@pytest.mark.parametrize("argv, message", [
    (["train", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["train", "--max-steps", "0"], "--max-steps must be >= 1, got 0"),
    (["train", "--width-multiplier", "0"], "--width-multiplier must be a finite number > 0, got 0.0"),
    (["train", "--middle-blocks", "9"], "--middle-blocks must be in [0, 8], got 9"),
    (["train", "--dropout", "1.5"], "--dropout must be in [0, 1), got 1.5"),
    (["train", "--bn-momentum", "nan"], "--bn-momentum must be in [0, 1], got nan"),
    (["train", "--bucket-mb", "0"], "--bucket-mb must be a finite number > 0, got 0.0"),
    (["train", "--threads", "0"], "--threads must be in [1, "),
    (["evaluate", "run", "--threads", "-2"], "--threads must be in [1, "),
    (["summary", "--image-size", "0"], "--image-size must be >= 1, got 0"),
    (["summary", "--num-classes", "0"], "--num-classes must be >= 1, got 0"),
    (["gradcheck", "--tol", "-1"], "--tol must be a finite number > 0, got -1.0"),
])
def test_a_number_out_of_range_is_refused_naming_its_flag(capsys, argv, message):
    """Before any work: a run with --seed -1 once failed with NumPy's "expected non-negative integer"."""
    assert f"npxception {argv[0]}: error: {message}" in _error_line(capsys, argv)


def test_runs_started_in_the_same_second_get_their_own_default_directory(tmp_path, monkeypatch, capsys):
    import npxception.cli.train as cli_train

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli_train.time, "strftime", lambda fmt: "20261203-120000")
    argv = ["train", "--preset", "tiny", "--backend", "numpy", "--train-size", "20", "--val-size", "10",
            "--image-size", "16", "--batch-size", "10", "--max-steps", "1", "--quiet"]
    assert main(argv) == 0 and main(argv) == 0
    capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["20261203-120000", "20261203-120000-2"]
    assert all((tmp_path / "runs" / name / "checkpoint.npz").exists() for name in ("20261203-120000",
                                                                                   "20261203-120000-2"))


def test_the_first_run_says_before_its_first_step_that_it_compiles(tmp_path, monkeypatch, capsys):
    import numba

    import npxception.backends.cpu  # noqa: F401 - its kernels find their cache where it is now, not below
    import npxception.cli.train as cli_train

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "numba"))
    assert not cli_train.cpu_kernels_cached()
    (tmp_path / "numba" / "npxception").mkdir(parents=True)
    (tmp_path / "numba" / "npxception" / "conv.conv2d-12.py311.nbi").write_bytes(b"")
    assert cli_train.cpu_kernels_cached()
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    argv = ["train", "--preset", "tiny", "--backend", "cpu", "--train-size", "20", "--val-size", "10",
            "--image-size", "16", "--batch-size", "10", "--max-steps", "1", "--quiet"]
    for cached in (True, False):
        monkeypatch.setattr(cli_train, "cpu_kernels_cached", lambda cached=cached: cached)
        assert main([*argv, "--out", str(tmp_path / f"run-{cached}")]) == 0
        lines = capsys.readouterr().out.splitlines()
        said = [line for line in lines if line.startswith("compiling the cpu backend's kernels: first run only")]
        assert said == ([] if cached else [lines[1]]), lines  # right after the first line, before the step
