"""What careless or hostile input must not do: reach a kernel unchecked, crash on a checkpoint, share a
run directory, pass a setting the ops reject, escape as a traceback, or be ignored in silence."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from npxception import Xception, XceptionConfig
from npxception.cli import main
from npxception.data import Dataset, DataSpec, load_image_folder, load_npz, load_split, make_shapes
from npxception.train import (
    CheckpointError, RunLock, RunLocked, SettingError, TrainConfig, Trainer, TrainingInterrupted, evaluate,
    load_checkpoint, save_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = TrainConfig(epochs=2, batch_size=16, optimizer="nesterov", lr=0.05, ema_decay=0.9, seed=3,
                     eval_batch_size=32)
TINY = ["--preset", "tiny", "--backend", "numpy", "--image-size", "16", "--train-size", "40",
        "--val-size", "20", "--batch-size", "20", "--quiet"]


@pytest.fixture(scope="module")
def data():
    return make_shapes(40, 16, seed=0), make_shapes(20, 16, seed=1)


def _model(num_classes=10):
    return Xception(XceptionConfig.tiny(num_classes=num_classes, bn_momentum=0.9), backend="numpy", seed=3)


class _Hook:
    """A model whose training forward number `at` (0-based) first calls `action()`."""

    def __init__(self, model, at, action):
        self.__dict__.update(_model=model, _at=at, _action=action, calls=0)

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __setattr__(self, name, value):
        setattr(self._model, name, value)

    def forward(self, x, training):
        if training:
            if self.calls == self._at:
                self._action()
            self.__dict__["calls"] += 1
        return self._model.forward(x, training)


def _one_line(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A tiny CLI run (2 epochs of 2 batches) stopped by Ctrl-C in its third step: resumable."""
    from npxception.models.xception import Xception as Model

    out = tmp_path_factory.mktemp("interrupted") / "run"
    forward, calls = Model.forward, []

    def forward_with_ctrl_c(self, x, training):
        if training:
            calls.append(1)
            if len(calls) == 3:
                signal.raise_signal(signal.SIGINT)
        return forward(self, x, training)

    Model.forward = forward_with_ctrl_c
    try:
        assert main(["train", *TINY, "--epochs", "2", "--out", str(out)]) == 130
    finally:
        Model.forward = forward
    return out


# --------------------------------------------------------------------------- 1. labels never reach a kernel unchecked

def test_trainer_refuses_data_with_more_classes_than_the_model(data, tmp_path):
    with pytest.raises(ValueError, match="train_data has 10 classes, the model only 5"):
        Trainer(_model(5), *data, CONFIG, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_labels_are_checked_before_the_loss_in_training_and_evaluation(data, tmp_path):
    train = make_shapes(40, 16, seed=0)
    trainer = Trainer(_model(), train, data[1], CONFIG, tmp_path / "run", quiet=True)
    train.labels[5] = 12  # changed after the dataset's own checks
    with pytest.raises(ValueError, match=r"training labels must be in \[0, 10\) .* got values in \[0, 12\]"):
        trainer.fit()
    bad = Dataset(data[1].images, np.full(20, -3), data[1].class_names)
    with pytest.raises(ValueError, match=r"evaluation labels must be in \[0, 10\)"):
        evaluate(_model(), bad, 8)


def test_resume_after_a_class_folder_was_added_is_refused(tmp_path, capsys):
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    out = tmp_path / "run"
    argv = ["train", "--dataset", "folder", "--data-dir", str(root), "--val-size", "4", "--preset", "tiny",
            "--backend", "numpy", "--batch-size", "10", "--epochs", "2", "--quiet", "--out", str(out)]
    from npxception.models.xception import Xception as Model

    forward = Model.forward
    Model.forward = lambda self, x, training: (signal.raise_signal(signal.SIGINT) if training else None,
                                               forward(self, x, training))[1]
    try:
        assert main(argv) == 130
    finally:
        Model.forward = forward
    capsys.readouterr()
    (root / "c").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / "c" / f"{i}.png")
    before = (out / "checkpoint.npz").read_bytes()
    err = _one_line(capsys, ["train", "--resume", str(out)])
    assert "data differs from the checkpoint's" in err and "class_names" in err
    assert (out / "checkpoint.npz").read_bytes() == before


# --------------------------------------------------------------------------- 2. checkpoints are checked before use

def _stopped_run(data, run_dir):
    trainer = None
    trainer = Trainer(_Hook(_model(), 3, lambda: trainer.request_stop()), *data, CONFIG, run_dir, quiet=True)
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    return load_checkpoint(run_dir)


@pytest.mark.parametrize("group", ["optimizer", "ema"])
def test_slots_of_the_wrong_shape_are_refused_and_change_nothing(data, tmp_path, group):
    groups, meta = _stopped_run(data, tmp_path / "run")
    key = next(k for k in groups[group] if k.startswith("predictions/kernel"))
    groups[group][key] = np.zeros(7, np.float32)
    trainer = Trainer(_model(), *data, CONFIG, tmp_path / "other", quiet=True)
    own = trainer.model.state_dict()
    with pytest.raises(ValueError, match=r"has shape \(7,\), the weight 'predictions/kernel' has"):
        trainer.restore(groups, meta)
    assert all(np.array_equal(v, trainer.model.state_dict()[k]) for k, v in own.items())
    assert trainer.epoch == 0 and trainer.optimizer.slots == {}


@pytest.mark.parametrize("field, value, message", [
    ("epoch", 7, "'epoch' must be in \\[0, 2\\]"),
    ("batch", -1, "'batch' must be in"),
    ("running", {"loss_sum": "x"}, "'running' must hold the numbers"),
    ("history", [], "'history' must hold one record per finished epoch"),
])
def test_checkpoint_counters_out_of_range_are_refused(data, tmp_path, field, value, message):
    groups, meta = _stopped_run(data, tmp_path / "run")
    meta[field] = value
    with pytest.raises(CheckpointError, match=message):
        Trainer(_model(), *data, CONFIG, tmp_path / "other", quiet=True).restore(groups, meta)


# --------------------------------------------------------------------------- 3. plots stay bounded, never abort

def test_the_confusion_figure_has_a_bounded_size_for_many_classes(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from npxception.train.plots import plot_confusion_matrix

    sizes = []
    monkeypatch.setattr(Figure, "savefig", lambda self, path, dpi: sizes.append(self.get_size_inches() * dpi))
    rng = np.random.default_rng(0)
    for k in (10, 1000):
        plot_confusion_matrix(rng.integers(0, 5, (k, k)), [f"class {i}" for i in range(k)], tmp_path / "c.png")
    assert all(max(size) <= 1500 for size in sizes), sizes


def test_a_thousand_class_confusion_matrix_draws(tmp_path):
    from npxception.train.plots import plot_confusion_matrix

    k = 1000
    matrix = np.diag(np.full(k, 3))
    matrix[5, 7] = 9
    plot_confusion_matrix(matrix, [f"n{i:08d}" for i in range(k)], tmp_path / "c.png")
    with Image.open(tmp_path / "c.png") as image:
        assert max(image.size) <= 1500


def test_a_failing_plot_warns_and_training_goes_on(data, tmp_path, monkeypatch):
    import npxception.train.trainer as trainer_module

    def fail(*args, **kwargs):
        raise MemoryError("Unable to allocate 9.3 GiB")

    monkeypatch.setattr(trainer_module, "plot_confusion_matrix", fail)
    with pytest.warns(RuntimeWarning, match="confusion_matrix.png not drawn .*training continues"):
        history = Trainer(_model(), *data, CONFIG, tmp_path, quiet=True).fit()
    assert len(history) == 2 and load_checkpoint(tmp_path)[1]["epoch"] == 2


# --------------------------------------------------------------------------- 4. one training per run directory

def _sleeper():
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_second_training_of_a_run_directory_is_refused_naming_the_first(data, tmp_path, capsys):
    other = _sleeper()
    try:
        (tmp_path / "run.lock").write_text(f"{other.pid} {socket.gethostname()}\n")
        with pytest.raises(RunLocked, match=f"in use by another training \\(process {other.pid}\\)"):
            Trainer(_model(), *data, CONFIG, tmp_path, quiet=True).fit()
        assert not (tmp_path / "metrics.jsonl").exists()
        err = _one_line(capsys, ["train", *TINY, "--out", str(tmp_path)])
        assert f"process {other.pid}" in err
    finally:
        other.kill()
        other.wait()


def test_a_stale_lock_is_taken_over_and_the_lock_goes_at_the_end(data, tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / "run.lock").write_text(f"{gone.pid} {socket.gethostname()}\n")
    Trainer(_model(), *data, TrainConfig(**{**CONFIG.__dict__, "epochs": 1}), tmp_path, quiet=True).fit()
    assert not (tmp_path / "run.lock").exists() and (tmp_path / "checkpoint.npz").exists()


def test_the_lock_is_released_when_training_fails(tmp_path):
    with pytest.raises(KeyError), RunLock(tmp_path / "run") as lock:
        assert lock.path.read_text().split()[0] == str(os.getpid())
        raise KeyError("a failure during training")
    assert not (tmp_path / "run").exists()  # the lock made the folder, nothing else was written


# --------------------------------------------------------------------------- 5. every setting validated where it enters

@pytest.mark.parametrize("name, value", [
    ("label_smoothing", 1.0), ("label_smoothing", -0.1), ("ema_decay", -0.5), ("ema_decay", 1.0),
    ("decay_rate", -0.94), ("lr", math.nan), ("lr", 0.0), ("momentum", math.nan), ("momentum", 1.0),
    ("weight_decay", math.inf), ("clip_norm", math.nan), ("warmup_epochs", -1.0), ("decay_epochs", 0.0),
    ("epochs", 1.5), ("batch_size", True), ("optimizer", "adagrad"), ("augment", "yes"),
])
def test_train_settings_outside_their_range_are_refused_by_name(name, value):
    with pytest.raises(SettingError, match=f"^{name} must be"):
        TrainConfig(**{name: value})


@pytest.mark.parametrize("name, value", [
    ("bn_momentum", 1.5), ("bn_momentum", -0.1), ("bn_epsilon", 0.0), ("bn_epsilon", -1e-3),
    ("bn_epsilon", math.nan), ("width_multiplier", math.inf), ("num_classes", 2.5),
])
def test_model_settings_the_ops_reject_are_refused_by_name(name, value):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        XceptionConfig.tiny(**{name: value})


def test_a_nan_setting_on_the_command_line_names_its_flag(capsys, tmp_path):
    assert "--lr must be a finite number, got nan" in _one_line(capsys, ["train", "--lr", "nan"])
    assert "--ema-decay must be in [0, 1)" in _one_line(capsys, ["train", "--ema-decay", "-0.5"])


# --------------------------------------------------------------------------- 6. resource errors are one line

@pytest.mark.parametrize("argv, message", [
    (["train", "--train-size", str(10**11)], "need about 307.2 TB of memory"),
    (["summary", "--preset", "tiny", "--num-classes", str(10**12)], "with 1000000000000 classes"),
    (["train", "--image-size", str(10**5)], "built-in 100000x100000 images would need about"),
])
def test_requests_too_large_for_the_machine_are_refused_before_allocating(capsys, argv, message):
    assert message in _one_line(capsys, argv)


def test_a_failed_allocation_is_one_line(capsys, monkeypatch):
    import npxception.data.sources as sources

    def allocate(*args):
        raise MemoryError("Unable to allocate 931. GiB for an array with shape (1000000000000,) and data type uint8")

    monkeypatch.setattr(sources, "make_shapes", allocate)
    err = _one_line(capsys, ["train"])
    assert "out of memory (Unable to allocate" in err and "--train-size" in err


def test_a_huge_label_without_class_names_is_refused(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((2, 8, 8, 3), np.uint8), labels=np.array([0, 10**12]))
    with pytest.raises(ValueError, match="labels go up to 1000000000000.*add class_names"):
        load_npz(tmp_path / "d.npz")


def test_decompression_bombs_and_oversized_folders_are_one_line(tmp_path, capsys, monkeypatch, interrupted):
    from PIL import Image as PILImage

    import npxception.resources as resources

    for name in ("a", "b"):
        (tmp_path / "folder" / name).mkdir(parents=True)
        PILImage.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "folder" / name / "x.png")
    monkeypatch.setattr(resources, "available_memory", lambda: 20_000)
    with pytest.raises(MemoryError, match="2 images of .* need about 49.2 KB .* give --image-size"):
        load_image_folder(tmp_path / "folder")
    monkeypatch.undo()
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # 64 x 64 is then a "bomb"
    err = _one_line(capsys, ["predict", str(interrupted), str(tmp_path / "folder" / "a" / "x.png")])
    assert "x.png: too large to decode safely" in err


# --------------------------------------------------------------------------- 7. resume says what it ignores

@pytest.mark.parametrize("extra, message", [
    (["--lr", "0.1"], "--lr 0.1 (the checkpoint has 0.05)"),
    (["--epochs", "9"], "--epochs 9 (the checkpoint has 2)"),
    (["--data-path", "/no/such.npz"], "--data-path /no/such.npz (the checkpoint has None)"),
    (["--image-size", "32"], "--image-size 32 (the checkpoint has 16)"),
    (["--out", "/elsewhere"], "--out /elsewhere"),
])
def test_resume_refuses_options_that_contradict_the_checkpoint(interrupted, capsys, extra, message):
    err = _one_line(capsys, ["train", "--resume", str(interrupted), *extra])
    assert "contradict them" in err and message in err


def test_resume_names_what_it_ignores_and_honours_run_options(interrupted, tmp_path, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(interrupted, run)
    assert main(["train", "--resume", str(run), "--preset", "paper", "--batch-size", "20", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "note: --preset ignored on --resume" in err
    assert load_checkpoint(run)[1]["epoch"] == 2


# --------------------------------------------------------------------------- 8. the real signals, without timing

def test_a_real_ctrl_c_stops_at_the_step_it_arrives_in(data, tmp_path, capsys):
    """signal.raise_signal delivers to this thread before returning: the handler has run when the
    hooked step goes on, and it says at once that a stop is coming (the step may be compiling)."""
    seen = []

    def ctrl_c():
        signal.raise_signal(signal.SIGINT)
        seen.append(capsys.readouterr().out)

    trainer = Trainer(_Hook(_model(), 0, ctrl_c), *data, CONFIG, tmp_path, quiet=True)
    with pytest.raises(TrainingInterrupted, match="epoch 1 after 1 of 3 batches") as stop:
        trainer.fit()
    assert stop.value.signal == signal.SIGINT
    assert "SIGINT: stopping after the current step" in seen[0]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_saves_like_ctrl_c(tmp_path):
    """In a child process: without a handler SIGTERM would end it at once, with no checkpoint."""
    script = textwrap.dedent(f"""
        import signal, sys
        from npxception.cli import main
        from npxception.models.xception import Xception
        forward, calls = Xception.forward, []
        def forward_with_sigterm(self, x, training):
            if training:
                calls.append(1)
                if len(calls) == 2:
                    signal.raise_signal(signal.SIGTERM)
            return forward(self, x, training)
        Xception.forward = forward_with_sigterm
        sys.exit(main(["train", *{TINY!r}, "--epochs", "2", "--out", {str(tmp_path / "run")!r}]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 143, done.stderr
    assert "Continue with: npxception train --resume" in done.stderr
    meta = load_checkpoint(tmp_path / "run")[1]
    assert (meta["epoch"], meta["batch"]) == (1, 0)


# --------------------------------------------------------------------------- 9. the smaller ones

def test_the_checkpoint_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    events, real_replace, real_fsync, real_open = [], os.replace, os.fsync, os.open
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    monkeypatch.setattr(os, "open", lambda path, *a: (events.append(("open", Path(path))), real_open(path, *a))[1])
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", fd)), real_fsync(fd))[1])
    save_checkpoint(tmp_path / "c.npz", {"model": {"w": np.zeros(2)}}, {})
    after = events[events.index("replace") + 1:]
    assert after[0] == ("open", tmp_path) and after[1][0] == "fsync"


def test_failed_settings_leave_no_run_directory(tmp_path, capsys):
    for argv in (["--lr", "-1"], ["--label-smoothing", "1"], ["--width-multiplier", "-1"]):
        _one_line(capsys, ["train", *TINY, *argv, "--out", str(tmp_path / "run")])
        assert not (tmp_path / "run").exists()


def test_a_one_class_dataset_warns(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", images=np.zeros((10, 16, 16, 3), np.uint8), labels=np.zeros(10, int),
             class_names=np.array(["cat", "dog"]))
    with pytest.warns(UserWarning, match="every training image has the same class \\('cat'\\)"):
        load_split(DataSpec("npz", data_path=str(tmp_path / "d.npz"), val_size=2))


def test_the_package_declares_its_public_names():
    import npxception

    assert {"ops", "Xception", "XceptionConfig", "preprocess_input", "gradcheck"} <= set(npxception.__all__)
    assert all(getattr(npxception, name) is not None for name in npxception.__all__)


def test_predict_top_k_must_be_positive(interrupted, tmp_path, capsys):
    Image.fromarray(make_shapes(1, 16).images[0]).save(tmp_path / "x.png")
    assert "--top-k must be >= 1, got 0" in _one_line(capsys, ["predict", str(interrupted), str(tmp_path / "x.png"),
                                                               "--top-k", "0"])


def test_numpy_integers_are_accepted_where_ints_are(data, tmp_path):
    i = np.int64
    config = XceptionConfig.tiny(input_shape=(i(16), i(16), i(3)), num_classes=i(10), middle_blocks=i(1))
    assert config.input_shape == (16, 16, 3) and type(config.num_classes) is int
    train = TrainConfig(epochs=i(1), batch_size=np.int32(16), seed=np.uint8(3), eval_batch_size=i(32))
    model = Xception(config, backend="numpy", seed=i(3))
    Trainer(model, *data, train, tmp_path, quiet=True).fit()
    assert json.loads(json.dumps(load_checkpoint(tmp_path)[1]["train_config"]))["epochs"] == 1


def test_messages_name_the_flag_that_fixes_them(tmp_path, capsys, interrupted):
    np.savez(tmp_path / "d.npz", images=np.zeros((5, 16, 16, 3), np.uint8), labels=np.arange(5) % 2)
    err = _one_line(capsys, ["train", "--dataset", "npz", "--data-path", str(tmp_path / "d.npz"), "--val-size", "9"])
    assert "choose --val-size between 1 and 4" in err
    err = _one_line(capsys, ["train", "--dataset", "npz", "--data-path", str(tmp_path / "d.npz"), "--image-size", "8"])
    assert "--image-size resizes the shapes and folder datasets" in err
    np.savez(tmp_path / "big.npz", images=np.zeros((4, 20, 20, 3), np.uint8), labels=np.zeros(4, int))
    err = _one_line(capsys, ["evaluate", str(interrupted), "--dataset", "npz",
                             "--data-path", str(tmp_path / "big.npz")])
    assert "resize the images to the model's size" in err and "--image-size" not in err


def test_debug_anywhere_on_the_line_shows_the_traceback(capsys):
    _one_line(capsys, ["train", "--lr", "-1"])
    with pytest.raises(SettingError):
        main(["train", "--lr", "-1", "--debug"])
    with pytest.raises(SettingError):
        main(["--debug", "train", "--lr", "-1"])


def test_unexpected_errors_are_one_line_too(capsys, monkeypatch):
    import npxception.cli.commands as commands

    monkeypatch.setattr(commands, "load_run", lambda *a: {}["missing"])
    assert "KeyError: 'missing' (an unexpected error; --debug shows where)" in _one_line(
        capsys, ["evaluate", "somewhere"])
