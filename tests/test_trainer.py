"""The Trainer: atomic checkpoints, bit-identical resume (also after Ctrl-C), the NaN stop."""

from __future__ import annotations

import signal

import numpy as np
import pytest

from npxception import Xception, XceptionConfig
from npxception.data import make_shapes
from npxception.train import (
    CheckpointError, TrainConfig, Trainer, TrainingDiverged, TrainingInterrupted, load_checkpoint,
    save_checkpoint,
)

CONFIG = TrainConfig(epochs=2, batch_size=16, optimizer="nesterov", lr=0.05, schedule="cosine",
                     warmup_epochs=0.5, ema_decay=0.99, clip_norm=5.0, seed=3, eval_batch_size=32)


@pytest.fixture(scope="module")
def data():
    return make_shapes(40, 16, seed=0), make_shapes(20, 16, seed=1)


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    """The uninterrupted run's final checkpoint, and its run directory."""
    run_dir = tmp_path_factory.mktemp("straight")
    history = _trainer(data, run_dir).fit()
    return run_dir, history


def _model(backend="numpy"):
    return Xception(XceptionConfig.tiny(num_classes=10, bn_momentum=0.9), backend=backend, seed=3)


def _trainer(data, run_dir, model=None, config=CONFIG):
    return Trainer(model or _model(), *data, config, run_dir, quiet=True)


class _Hook:
    """Wraps a model; calls `action()` at the start of training forward number `at` (0-based)."""

    def __init__(self, model, at, action):
        self._model, self._at, self._action, self.calls = model, at, action, 0

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __setattr__(self, name, value):
        if name.startswith("_") or name == "calls":
            object.__setattr__(self, name, value)
        else:
            setattr(self._model, name, value)

    def forward(self, x, training):
        if training:
            if self.calls == self._at:
                self._action()
            self.calls += 1
        return self._model.forward(x, training)


def _final_state(run_dir):
    groups, meta = load_checkpoint(run_dir / "checkpoint.npz")
    for record in meta["history"]:  # wall-clock measurements differ between runs; nothing else may
        del record["images_per_sec"], record["train_seconds"], record["eval_seconds"]
    return groups, meta


def _assert_identical(a, b):
    (groups_a, meta_a), (groups_b, meta_b) = a, b
    assert meta_a["history"] == meta_b["history"]
    assert meta_a["dropout_counter"] == meta_b["dropout_counter"] > 0
    assert groups_a.keys() == groups_b.keys() == {"model", "optimizer", "ema"}
    for group in groups_a:
        assert groups_a[group].keys() == groups_b[group].keys()
        for key in groups_a[group]:
            np.testing.assert_array_equal(groups_a[group][key], groups_b[group][key], err_msg=f"{group}/{key}")


def test_training_writes_metrics_plots_and_checkpoint(straight):
    tmp_path, history = straight
    assert [h["epoch"] for h in history] == [1, 2]
    assert {"checkpoint.npz", "metrics.jsonl", "learning_curves.png", "confusion_matrix.png"} <= {
        p.name for p in tmp_path.iterdir()}
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"val_top5"' in lines[0]
    assert not list(tmp_path.glob("*.tmp"))


def _stopping_trainer(data, run_dir, model, at):
    """A trainer whose stop is requested through its own API during training step `at`."""
    trainer = None
    trainer = _trainer(data, run_dir, model=_Hook(model, at, lambda: trainer.request_stop()))
    return trainer


@pytest.mark.parametrize("stop_at, position", [(2, (1, 0)), (4, (1, 2))])
def test_ctrl_c_saves_and_resume_is_bit_identical(data, straight, tmp_path, stop_at, position):
    """A stop requested during a training step (what Ctrl-C does): the step completes, a checkpoint
    is saved, training stops; resuming ends with exactly the weights, slots, averages and metrics of
    an uninterrupted run. Step 2 is the last of epoch 1 (stop at an epoch boundary), step 4 the
    second of epoch 2. The stop goes through `request_stop`, so where it lands never depends on
    when a signal is handled (test_hardening.py has the real signals)."""
    with pytest.raises(TrainingInterrupted, match=f"epoch 2 after {position[1]} of 3 batches"):
        _stopping_trainer(data, tmp_path / "split", _model(), stop_at).fit()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    groups, meta = load_checkpoint(tmp_path / "split" / "checkpoint.npz")
    assert (meta["epoch"], meta["batch"]) == position
    resumed = _trainer(data, tmp_path / "split")
    resumed.restore(groups, meta)
    resumed.fit()
    _assert_identical(_final_state(straight[0]), _final_state(tmp_path / "split"))
    assert len((tmp_path / "split" / "metrics.jsonl").read_text().splitlines()) == 2


def test_resume_is_bit_identical_on_the_cpu_backend(data, tmp_path):
    """The Numba kernels are parallel: their reductions must still be deterministic for exact resume."""
    _trainer(data, tmp_path / "straight", model=_model("cpu")).fit()
    with pytest.raises(TrainingInterrupted):
        _stopping_trainer(data, tmp_path / "split", _model("cpu"), 4).fit()
    resumed = _trainer(data, tmp_path / "split", model=_model("cpu"))
    resumed.restore(*load_checkpoint(tmp_path / "split"))
    resumed.fit()
    _assert_identical(_final_state(tmp_path / "straight"), _final_state(tmp_path / "split"))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path):
    model = _model()

    def poison():
        state = model.state_dict()
        state["predictions/kernel"][:] = np.nan
        model.load_state_dict(state)

    trainer = _trainer(data, tmp_path, model=_Hook(model, 4, poison))  # epoch 2, batch 2
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2, batch 2.*last good checkpoint"):
        trainer.fit()
    groups, meta = load_checkpoint(tmp_path / "checkpoint.npz")
    assert meta["epoch"] == 1 and len(meta["history"]) == 1
    assert all(np.isfinite(v).all() for v in groups["model"].values())


def test_checkpoints_carry_their_format_and_a_newer_one_is_refused(data, straight, tmp_path):
    from npxception.train.checkpoint import FORMAT_VERSION

    groups, meta = load_checkpoint(straight[0] / "checkpoint.npz")
    assert meta["format_version"] == FORMAT_VERSION
    assert [h["skip_bad_images"] for h in meta["history"]] == [False, False]
    trainer = _trainer(data, tmp_path)
    with pytest.raises(CheckpointError, match=f"has format version {FORMAT_VERSION + 1}, newer than"):
        trainer.restore(groups, {**meta, "format_version": FORMAT_VERSION + 1})
    assert (trainer.epoch, trainer.batch) == (0, 0)


def test_a_bad_image_is_named_with_its_epoch_and_batch_counted_from_one(tmp_path):
    """As the progress bar and every other message count them (the loader's arguments count from 0)."""
    from npxception.data import DatasetError, StreamingDataset
    from npxception.data.streaming import folder_index
    from tests.streaming_data import make_folder

    root = make_folder(tmp_path / "images", 15)
    (root / "class1" / "garbage.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    train = StreamingDataset(folder_index(root), 16, workers=0)
    trainer = Trainer(_model(), train, make_shapes(8, 16, seed=1), TrainConfig(epochs=2, batch_size=4, seed=3),
                      tmp_path / "run", quiet=True)
    with pytest.raises(DatasetError, match=r"garbage\.jpg: .*\(batch (\d+) of epoch 1\)") as caught:
        trainer.fit()
    assert f"(batch {trainer.batch + 1} of epoch 1)" in str(caught.value)  # the batch after the last one done


def test_restore_refuses_a_checkpoint_of_other_settings(data, tmp_path):
    _trainer(data, tmp_path, config=TrainConfig(**{**CONFIG.__dict__, "epochs": 1})).fit()
    groups, meta = load_checkpoint(tmp_path)
    other = _trainer(data, tmp_path / "other", config=TrainConfig(**{**CONFIG.__dict__, "lr": 0.1}))
    with pytest.raises(ValueError, match="lr: 0.05 \\(checkpoint\\) vs 0.1"):
        other.restore(groups, meta)


# --------------------------------------------------------------------------- checkpoint files

def test_checkpoint_round_trip(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", {"model": {"a/kernel": np.arange(3.0)}}, {"epoch": 4})
    groups, meta = load_checkpoint(path)
    np.testing.assert_array_equal(groups["model"]["a/kernel"], np.arange(3.0))
    assert meta == {"epoch": 4}


def test_a_crash_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.npz", {"model": {"w": np.zeros(2)}}, {"epoch": 1})
    before = path.read_bytes()

    def crash(file, **arrays):
        file.write(b"half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"model": {"w": np.ones(2)}}, {"epoch": 2})
    assert path.read_bytes() == before
    assert load_checkpoint(path)[1] == {"epoch": 1}


def test_unreadable_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="bad.npz: cannot read checkpoint"):
        load_checkpoint(tmp_path / "bad.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(1))
    with pytest.raises(CheckpointError, match="not an npxception checkpoint"):
        load_checkpoint(tmp_path / "plain.npz")


def test_state_dict_files_go_through_the_one_checkpoint_writer(tmp_path):
    from npxception import io
    from npxception.train import checkpoint

    assert checkpoint.save_checkpoint is io.save_checkpoint
    io.save_npz(tmp_path / "w.npz", {"dense/kernel": np.ones((2, 3))}, {"step": 3})
    groups, meta = load_checkpoint(tmp_path / "w.npz")
    assert meta == {"step": 3} and groups["model"]["dense/kernel"].shape == (2, 3)
    np.savez(tmp_path / "plain.npz", **{"dense/kernel": np.zeros(2)})
    assert io.load_npz(tmp_path / "plain.npz")[0].keys() == {"dense/kernel"}
