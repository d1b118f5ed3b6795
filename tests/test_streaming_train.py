"""Training through the streaming path: the CLI flags, --max-steps then --resume, the recorded dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from npxception.cli import main
from npxception.data import DataSpec, DatasetError, StreamingDataset, load_split, resolve_stream, sources
from npxception.train import load_checkpoint
from tests.streaming_data import make_folder, make_shards

TINY = ["--preset", "tiny", "--backend", "numpy", "--image-size", "16", "--batch-size", "8", "--epochs", "2",
        "--quiet", "--workers", "2"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("train") / "images", 45, classes=5)


@pytest.fixture(scope="module")
def straight(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    assert main(["train", "--dataset", "folder", "--data-dir", str(folder), "--stream", *TINY, "--out", str(out)]) == 0
    return out


def test_the_first_line_names_the_loading_mode(folder, tmp_path, capsys):
    argv = ["train", "--dataset", "folder", "--data-dir", str(folder), *TINY, "--max-steps", "1"]
    assert main([*argv, "--stream", "--out", str(tmp_path / "s")]) == 0
    assert "on folder (streamed from disk, 2 data workers): 41 training / 4 validation" in \
        capsys.readouterr().out.splitlines()[0]
    assert main([*argv, "--in-memory", "--out", str(tmp_path / "m")]) == 0
    assert "on folder (in memory)" in capsys.readouterr().out.splitlines()[0]


def test_max_steps_then_resume_matches_the_uninterrupted_run(folder, straight, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--dataset", "folder", "--data-dir", str(folder), "--stream", *TINY, "--out", str(out)]
    assert main([*argv, "--max-steps", "3"]) == 0
    assert f"stopped after --max-steps 3; continue with --resume {out}" in capsys.readouterr().out
    _, meta = load_checkpoint(out)
    assert (meta["epoch"], meta["batch"]) == (0, 3)
    assert meta["data"]["stream"] is True and meta["data"]["image_size"] == 16
    assert main(["train", "--resume", str(out), "--quiet", "--workers", "0", "--max-steps", "4"]) == 0
    assert main(["train", "--resume", str(out), "--quiet", "--workers", "1"]) == 0
    (expected, _), (resumed, _) = load_checkpoint(straight), load_checkpoint(out)
    for group in expected:
        for key, value in expected[group].items():
            np.testing.assert_array_equal(resumed[group][key], value, err_msg=f"{group}/{key}")


def test_evaluate_rebuilds_the_streamed_validation_split(straight, capsys):
    _, meta = load_checkpoint(straight)
    assert main(["evaluate", str(straight), "--json", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert f'"top1": {meta["history"][-1]["val_top1"]}' in out and '"count": 4' in out


@pytest.mark.parametrize("mode", ["--stream", None], ids=["streamed", "small images in memory"])
def test_shards_train_and_evaluate_every_image(folder, straight, tmp_path, capsys, mode):
    shards = make_shards(folder, tmp_path / "shards", per_shard=10)
    pattern = str(shards / "part-{000..004}.tar")
    out = tmp_path / "run"
    assert main(["train", "--dataset", "shards", "--data-dir", pattern, *TINY, *([mode] if mode else []),
                 "--max-steps", "2", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    if mode:
        assert "on shards (streamed from disk" in said
    else:  # 16 px images: decoded once, up front, and the run's first line says so
        assert said.startswith("data: 45 images decoded into memory") and "on shards (in memory)" in said
        assert load_checkpoint(out)[1]["data"]["stream"] is False  # what --resume and evaluate reload
        assert main(["train", "--resume", str(out), "--max-steps", "1", "--quiet"]) == 0
        assert "decoded into memory" in capsys.readouterr().out
    assert main(["evaluate", str(straight), "--dataset", "shards", "--data-dir", pattern]) == 0
    assert capsys.readouterr().out.startswith("shards: 45 images")


def test_a_separate_validation_shard_and_the_best_checkpoint(folder, tmp_path, capsys):
    shards = make_shards(folder, tmp_path / "shards", per_shard=10)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "shards", "--data-dir", str(shards / "part-{000..003}.tar"),
                 "--val-data-dir", str(shards / "part-004.tar"), *TINY, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "40 training / 5 validation images" in said and "validation images from" in said
    _, meta = load_checkpoint(out)
    history = meta["history"]
    best = max(range(len(history)), key=lambda k: (history[k]["val_top1"], -k))  # the first of equals
    assert load_checkpoint(out / "best.npz")[1]["epoch"] == best + 1
    assert main(["evaluate", str(out / "best.npz"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 5 and result["top1"] == history[best]["val_top1"]
    assert list(result["per_class_top1"]) == result["class_names"] == list(meta["class_names"])


def test_the_mode_is_chosen_by_size(folder, monkeypatch):
    spec = DataSpec("folder", str(folder), image_size=16)
    assert resolve_stream(spec).stream is False
    monkeypatch.setattr(sources, "IN_MEMORY_LIMIT", 41 * 16 * 16 * 3 - 1)
    assert resolve_stream(spec).stream is True
    train, val = load_split(spec, workers=0)
    assert isinstance(train, StreamingDataset) and (len(train), len(val)) == (41, 4)
    assert resolve_stream(DataSpec("shapes")).stream is False


def test_streaming_options_are_checked(folder, tmp_path):
    with pytest.raises(DatasetError, match="--val-data-dir takes a folder or shards"):
        DataSpec("npz", data_path=str(tmp_path / "d.npz"), val_data_dir=str(tmp_path))
    with pytest.raises(DatasetError, match="only folder and shards datasets can be streamed"):
        DataSpec("shapes", stream=True)
    with pytest.raises(DatasetError, match="no such shard file"):
        load_split(DataSpec("shards", str(tmp_path / "none-{0..3}.tar")))
