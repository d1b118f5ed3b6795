"""Old runs keep working, and a run stopped by an unreadable image has a way forward.

tests/fixtures/run_v1 is a run directory written by npxception before checkpoints carried a format
version (format 1; tests/fixtures/run_v1.json says by which commit and command, and what that code
printed when evaluating it and after resuming it for one more step). It is only ever read here:
every test that writes works on a copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from npxception.cli import main
from npxception.train import load_checkpoint, save_checkpoint

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RUN_V1 = FIXTURES / "run_v1"
EXPECTED = json.loads((FIXTURES / "run_v1.json").read_text())


@pytest.fixture()
def run_v1(tmp_path) -> Path:
    run = tmp_path / "run_v1"
    shutil.copytree(RUN_V1, run)
    return run


def _one_error_line(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# --------------------------------------------------------------------------- format 1 checkpoints

def test_a_format_1_checkpoint_has_no_version_and_evaluates_as_it_did(capsys):
    assert "format_version" not in load_checkpoint(RUN_V1)[1]
    assert main(["evaluate", str(RUN_V1), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = EXPECTED["evaluate"]
    assert result["count"] == expected["count"]
    assert (result["top1"], result["top5"]) == (expected["top1"], expected["top5"])
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-5)


def test_a_format_1_checkpoint_resumes_for_one_more_step(run_v1, capsys):
    from npxception.train.checkpoint import FORMAT_VERSION

    assert main(["train", "--resume", str(run_v1), "--max-steps", "1", "--quiet"]) == 0
    meta = load_checkpoint(run_v1)[1]
    assert meta["format_version"] == FORMAT_VERSION
    assert (meta["epoch"], meta["batch"]) == (1, 0)
    (record,) = meta["history"]
    for key, value in EXPECTED["after_one_more_step"].items():  # what the code that wrote it computed
        assert record[key] == pytest.approx(value, rel=1e-5), key
    assert record["skip_bad_images"] is False
    assert len((run_v1 / "metrics.jsonl").read_text().splitlines()) == 1


def test_a_checkpoint_of_a_newer_format_is_refused_with_one_line(run_v1, capsys):
    groups, meta = load_checkpoint(run_v1)
    save_checkpoint(run_v1 / "checkpoint.npz", groups, {**meta, "format_version": 99})
    for argv in (["train", "--resume", str(run_v1)], ["evaluate", str(run_v1)]):
        err = _one_error_line(capsys, argv)
        assert "has format version 99, newer than this npxception reads (1 to " in err, err
        assert "upgrade npxception" in err


def test_keys_the_data_description_gains_later_do_not_stop_an_old_run(run_v1, monkeypatch):
    """A key the checkpoint never recorded cannot be compared; the keys it did record still are."""
    import npxception.data
    import npxception.train.trainer
    from npxception.data import describe_dataset

    def described_with_more(data):
        return {**describe_dataset(data), "file_sizes": [123] * len(data), "content_digest": "abc"}

    monkeypatch.setattr(npxception.data, "describe_dataset", described_with_more)
    monkeypatch.setattr(npxception.train.trainer, "describe_dataset", described_with_more)
    assert main(["train", "--resume", str(run_v1), "--max-steps", "1", "--quiet"]) == 0


def test_the_recorded_keys_of_the_data_are_still_compared():
    from npxception.train.resume import check_same_data

    saved = {"train": {"count": 20, "digest": "a"}, "val": {"count": 10}}
    now = {"train": {"count": 20, "digest": "a", "file_sizes": [1, 2]}, "val": {"count": 10, "digest": "b"}}
    check_same_data({"data_description": saved}, now)
    with pytest.raises(ValueError, match=r"the train data differs from the checkpoint's \(digest: 'a' \(checkpoint\) "
                                         r"vs 'c'\)"):
        check_same_data({"data_description": saved}, {**now, "train": {**now["train"], "digest": "c"}})


def test_data_copied_without_its_modification_times_resumes_with_a_note():
    from npxception.train.resume import check_same_data

    saved = {"train": {"count": 20, "sizes_digest": "s", "mtimes_digest": "t", "content_digest": "c"},
             "val": {"count": 10}}
    copied = {**saved, "train": {**saved["train"], "mtimes_digest": "t2"}}
    with pytest.warns(UserWarning, match="the train files' modification times differ .* sampled contents do not"):
        check_same_data({"data_description": saved}, copied)
    edited = {**saved, "train": {**copied["train"], "content_digest": "c2"}}
    with pytest.raises(ValueError, match="mtimes_digest: 't' .* content_digest: 'c' \\(checkpoint\\) vs 'c2'"):
        check_same_data({"data_description": saved}, edited)


# --------------------------------------------------------------------------- after a bad image

@pytest.fixture()
def folder_with_a_bad_image(tmp_path) -> Path:
    from tests.streaming_data import make_folder

    root = make_folder(tmp_path / "images", 15)
    (root / "class1" / "garbage.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    return root


def test_resume_with_skip_bad_images_after_a_run_stopped_on_a_bad_image(folder_with_a_bad_image, tmp_path, capsys):
    """The error advises --skip-bad-images; --resume takes it, and the run records from when it skips."""
    run = tmp_path / "run"
    argv = ["train", "--dataset", "folder", "--data-dir", str(folder_with_a_bad_image), "--stream", "--val-size", "4",
            "--preset", "tiny", "--backend", "numpy", "--image-size", "16", "--batch-size", "4", "--epochs", "2",
            "--quiet", "--workers", "0", "--out", str(run)]
    assert main([*argv, "--max-steps", "1"]) == 0  # the bad image is in the second batch
    capsys.readouterr()
    resume = ["train", "--resume", str(run), "--quiet", "--workers", "0"]
    err = _one_error_line(capsys, resume)
    assert "garbage.jpg: cannot read" in err and "--skip-bad-images" in err
    assert "(batch 2 of epoch 1)" in err, err  # counted from 1, as the progress bar counts
    assert main([*resume, "--skip-bad-images"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("resuming Xception") and \
        "skipping unreadable images from this resume on" in out.splitlines()[0], out
    meta = load_checkpoint(run)[1]
    assert meta["data"]["skip_bad_images"] is True and meta["epoch"] == 2
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["skip_bad_images"] for r in records] == [True, True]
