"""Training through the streaming path: the CLI flags, --max-steps then --resume, the recorded dataset."""

from __future__ import annotations

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


def test_shards_train_and_evaluate_every_image(folder, straight, tmp_path, capsys):
    shards = make_shards(folder, tmp_path / "shards", per_shard=10)
    pattern = str(shards / "part-{000..004}.tar")
    out = tmp_path / "run"
    assert main(["train", "--dataset", "shards", "--data-dir", pattern, *TINY, "--max-steps", "2",
                 "--out", str(out)]) == 0
    assert "on shards (streamed from disk" in capsys.readouterr().out
    assert main(["evaluate", str(straight), "--dataset", "shards", "--data-dir", pattern]) == 0
    assert capsys.readouterr().out.startswith("shards: 45 images")


def test_the_mode_is_chosen_by_size(folder, monkeypatch):
    spec = DataSpec("folder", str(folder), image_size=16)
    assert resolve_stream(spec).stream is False
    monkeypatch.setattr(sources, "IN_MEMORY_LIMIT", 41 * 16 * 16 * 3 - 1)
    assert resolve_stream(spec).stream is True
    train, val = load_split(spec, workers=0)
    assert isinstance(train, StreamingDataset) and (len(train), len(val)) == (41, 4)
    assert resolve_stream(DataSpec("shapes")).stream is False


def test_streaming_options_are_checked(folder, tmp_path):
    with pytest.raises(DatasetError, match="shards is always streamed"):
        DataSpec("shards", str(tmp_path), stream=False)
    with pytest.raises(DatasetError, match="only folder and shards datasets can be streamed"):
        DataSpec("shapes", stream=True)
    with pytest.raises(DatasetError, match="no such shard file"):
        load_split(DataSpec("shards", str(tmp_path / "none-{0..3}.tar")))
