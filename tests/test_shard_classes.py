"""Class names for tar shards from classes.txt / classes.json, and small images decoded up front."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from npxception.data import DatasetError, DataSpec, describe_dataset
from npxception.data.streaming import (
    Reader, StreamingDataset, WholeImage, choose_loading, decoded_or_streamed_evaluation, decoded_or_streamed_split,
    materialize, shard_index,
)
from tests.streaming_data import jpeg_bytes, make_small_shards, picture, write_shard

NAMES = ["cat", "dog", "pickup truck"]


@pytest.fixture()
def shards(tmp_path):
    return make_small_shards(tmp_path / "shards", 24, size=16, classes=3, per_shard=10)


# --------------------------------------------------------------------------- class names

def test_class_names_come_from_classes_txt(shards):
    assert shard_index(str(shards)).class_names == ("0", "1", "2")  # none given: the labels' numbers
    (shards / "classes.txt").write_text("\n".join(NAMES) + "\n\n")  # blank lines after the last name are fine
    index = shard_index(str(shards))  # the cached index, named anew
    assert index.class_names == tuple(NAMES)
    data = StreamingDataset(index, 16, workers=0)
    assert describe_dataset(data)["class_names"] == NAMES


@pytest.mark.parametrize("content", [NAMES, {"dog": 1, "cat": 0, "pickup truck": 2}])
def test_class_names_come_from_classes_json(shards, content):
    (shards / "classes.json").write_text(json.dumps(content))
    assert shard_index(str(shards / "part-{000..002}.tar")).class_names == tuple(NAMES)


def test_more_names_than_labels_keep_every_class(shards):
    (shards / "classes.txt").write_text("\n".join(NAMES + ["bird"]))
    index = shard_index(str(shards / "part-000.tar"))
    assert index.class_names[-1] == "bird" and index.labels.max() == 2


@pytest.mark.parametrize("name, content, message", [
    ("classes.txt", "cat\n\ndog\npickup truck\n", r"classes.txt: line 2 is empty"),
    ("classes.txt", "cat\ndog\ncat\n", r"classes.txt: the name 'cat' is given to classes 0 and 2"),
    ("classes.txt", "\n\n", r"classes.txt: names no classes"),
    ("classes.json", '{"cat": 0, "dog": 2, "pickup truck": 3}', r"classes.json: the labels of its 3 names must be "
                                                                  r"0..2, each once, got \[0, 2, 3\]"),
    ("classes.json", '{"cat": "0"}', r"classes.json: an object of class names must map each name to an integer"),
    ("classes.json", '[1, 2, 3]', r"classes.json: expected a list of class names or an object"),
    ("classes.json", '["cat", "", "dog"]', r"classes.json: class 1 has an empty name"),
    ("classes.json", '["cat", "dog"', r"classes.json: not valid JSON"),
])
def test_bad_class_files_are_refused_naming_the_file(shards, name, content, message):
    (shards / name).write_text(content)
    with pytest.raises(DatasetError, match=message) as raised:
        shard_index(str(shards))
    assert "\n" not in str(raised.value)


def test_two_class_files_are_refused(shards):
    (shards / "classes.txt").write_text("\n".join(NAMES))
    (shards / "classes.json").write_text(json.dumps(NAMES))
    with pytest.raises(DatasetError, match=r"holds both classes.txt and classes.json; keep the one"):
        shard_index(str(shards))


def test_labels_beyond_the_names_are_refused(shards):
    (shards / "classes.txt").write_text("cat\ndog\n")
    with pytest.raises(DatasetError, match=r"classes.txt: names 2 classes \(labels 0..1\), but the data holds "
                                           r"label 2; add the missing names or fix the labels"):
        shard_index(str(shards))


# --------------------------------------------------------------------------- decoded up front or streamed

def _spec(shards, **options):
    return DataSpec("shards", str(shards), val_size=4, **options)


def test_small_images_within_the_budget_are_decoded_into_memory(shards):
    (shards / "classes.txt").write_text("\n".join(NAMES))
    loaded = decoded_or_streamed_split(_spec(shards), workers=2, budget=24 * 16 * 16 * 3, progress=False)
    assert loaded.in_memory and (len(loaded.train), len(loaded.val)) == (20, 4)
    assert loaded.train.images.dtype == np.uint8 and loaded.train.image_shape == (16, 16, 3)
    assert loaded.train.class_names == tuple(NAMES)
    assert loaded.line.startswith("data: 24 images decoded into memory (18.4 KB) in ") and \
        loaded.line.endswith(" s with 2 processes")
    streamed = StreamingDataset(shard_index(str(shards)), 16, workers=0)
    assert np.array_equal(np.sort(np.concatenate([loaded.train.labels, loaded.val.labels])), np.sort(streamed.labels))


def test_over_the_budget_or_large_images_stream(shards, tmp_path):
    loaded = decoded_or_streamed_split(_spec(shards, image_size=16), workers=1, budget=24 * 16 * 16 * 3 - 1)
    assert not loaded.in_memory and isinstance(loaded.train, StreamingDataset)
    assert loaded.line == "data: streamed with 1 worker (decoded they would take 18.4 KB, over the 18.4 KB memory " \
                          "budget)"
    large = tmp_path / "large.tar"
    write_shard(large, [(f"k{i}", jpeg_bytes(picture(np.random.default_rng(i), 48, 100)), 0) for i in range(3)])
    choice = choose_loading(shard_index(str(large)), 32)
    assert not choice.in_memory and choice.reason == "images up to 100 px, above the 64 px decoded up front"


def test_a_recorded_choice_is_kept_whatever_the_budget(shards):
    spec = _spec(shards, image_size=16)
    assert not decoded_or_streamed_split(spec, workers=0, in_memory=False).in_memory
    loaded = decoded_or_streamed_evaluation(spec, workers=0, in_memory=True, budget=1, progress=False)
    assert loaded.in_memory and len(loaded.train) == 24 and loaded.val is None


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_the_up_front_decode_is_bitwise_the_one_by_one_decode(tmp_path, workers, monkeypatch):
    from npxception.data.streaming import memory

    monkeypatch.setattr(memory, "CHUNK", 7)  # several chunks, and slots reused, on a small set
    shards = make_small_shards(tmp_path / "s", 40, size=20, per_shard=15)
    index = shard_index(str(shards))
    rows = np.array([39, 3, 17, 18, 0, 25, 11, 30, 31, 2, 5, 8, 22, 36, 1])
    reader = Reader(index)
    for size in (None, 24):
        decoded = materialize(index, size, rows=rows, workers=workers, progress=False)
        one_by_one = np.stack([WholeImage(size or 20)(reader.read(int(i))) for i in rows])
        assert decoded.data.images.dtype == np.uint8 and np.array_equal(decoded.data.images, one_by_one)
        assert np.array_equal(decoded.data.labels, index.labels[rows]) and np.array_equal(decoded.rows, rows)
    reader.close()


def test_the_progress_bar_is_shown_unless_quiet(shards, capsys):
    index = shard_index(str(shards))
    materialize(index, rows=slice(0, 12), workers=0, progress=True)
    assert "decoding" in capsys.readouterr().err
    materialize(index, rows=slice(0, 12), workers=0, progress=False)
    assert capsys.readouterr().err == ""


def test_an_unreadable_image_is_named_or_left_out(tmp_path, caplog):
    rng = np.random.default_rng(0)
    samples = [(f"k{i}", jpeg_bytes(picture(rng, 16, 16)), i % 2) for i in range(6)]
    samples[3] = ("k3", b"\xff\xd8 not a JPEG", 1)
    write_shard(tmp_path / "bad.tar", samples)
    index = shard_index(str(tmp_path / "bad.tar"))
    with pytest.raises(DatasetError, match=r"bad.tar:k3.jpg: cannot read as an image.*--skip-bad-images"):
        materialize(index, 16, workers=2, progress=False)
    with caplog.at_level(logging.WARNING, logger="npxception.data"):
        decoded = materialize(index, 16, workers=0, progress=False, skip_bad=True)
    assert len(decoded.data) == 5 and list(decoded.rows) == [0, 1, 2, 4, 5]
    assert "skipping unreadable image" in caplog.text and "k3.jpg" in caplog.text


def test_images_of_another_size_without_an_image_size_are_named(tmp_path):
    rng = np.random.default_rng(0)
    write_shard(tmp_path / "mixed.tar", [("a", jpeg_bytes(picture(rng, 16, 16)), 0),
                                         ("b", jpeg_bytes(picture(rng, 20, 16)), 1)])
    index = shard_index(str(tmp_path / "mixed.tar"))
    with pytest.raises(DatasetError, match=r"mixed.tar:b.jpg: is 16x20, the first image 16x16; give --image-size "
                                           r"to resize them all$"):
        materialize(index, workers=0, progress=False)
    assert materialize(index, 16, workers=0, progress=False).data.image_shape == (16, 16, 3)
