"""The streaming pipeline: indexes, decoding, the crops, worker determinism, laziness, bad files, dead workers."""

from __future__ import annotations

import io
import logging
import multiprocessing as mp
import os
import signal
import tarfile
import tracemalloc

import numpy as np
import pytest

from npxception.data import DatasetError, Loader, load_image_folder
from npxception.data.streaming import (
    EVAL_CROP_FRACTION, StreamingDataset, Transform, WorkerError, center_box, decode, folder_index,
    image_shape, random_resized_box, shard_files, shard_index,
)
from tests.streaming_data import jpeg_bytes, make_folder, make_shards, picture


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("stream") / "images", 40)


def _epoch(data, workers, epoch=1, start=0, **options):
    data = StreamingDataset(data.index, data.image_size, skip_bad=data.skip_bad, workers=workers)
    options = {"shuffle": True, "augment": True, "seed": 7, **options}
    return list(data.loader(options.pop("batch_size", 6), **options).epoch(epoch, start))


def _same(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)


# --------------------------------------------------------------------------- index and shards

def test_folder_index_matches_the_in_memory_reader_and_is_cached(folder):
    index = folder_index(folder)
    data = load_image_folder(folder, 16)
    assert index.class_names == data.class_names and np.array_equal(index.labels, data.labels)
    assert (folder / ".npxception-index.npz").is_file()
    again = folder_index(folder)
    assert again.names_blob == index.names_blob and np.array_equal(again.labels, index.labels)


def test_folder_index_is_rebuilt_when_a_file_is_added(tmp_path):
    root = make_folder(tmp_path / "grow", 6)
    assert len(folder_index(root)) == 6
    (root / "class0" / "new.jpg").write_bytes(jpeg_bytes(np.zeros((8, 8, 3), np.uint8)))
    with pytest.warns(UserWarning, match="index cache .*: out of date"):
        assert len(folder_index(root)) == 7


def test_shards_give_the_same_batches_as_the_folder(folder, tmp_path):
    shards = make_shards(folder, tmp_path / "shards")
    index = shard_index(str(shards))
    assert len(index) == 40 and np.array_equal(index.labels, folder_index(folder).labels)
    listed = shard_files(str(shards / "part-{000..005}.tar"))
    assert [str(p) for p in listed] == sorted(str(p) for p in shards.glob("*.tar"))
    from_folder = StreamingDataset(folder_index(folder), 16, workers=0)
    _same(_epoch(StreamingDataset(index, 16, workers=0), 0), _epoch(from_folder, 0))


def test_a_shard_sample_without_a_label_is_named(tmp_path):
    path = tmp_path / "bad.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("x/k1.jpg")
        data = jpeg_bytes(np.zeros((8, 8, 3), np.uint8))
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DatasetError, match="k1.*no .cls label"):
        shard_index(str(path), cache=False)


# --------------------------------------------------------------------------- decoding and crops

def test_reduced_decode_is_smaller_but_covers_the_request():
    pixels = picture(np.random.default_rng(0), 375, 500)
    data = jpeg_bytes(pixels)
    assert image_shape(data) == (375, 500)
    assert decode(data, reduced=False).shape == (375, 500, 3)
    small = decode(data, 40, 50)
    assert small.shape == (47, 63, 3)  # libjpeg's 1/8 scale
    assert decode(data, 330, 440).shape == (375, 500, 3)  # 7/8 would be 329 x 438: too small
    full = Transform(32, train=False, reduced_decode=False)(data, None).astype(int)
    reduced = Transform(32, train=False)(data, None).astype(int)
    assert np.abs(full - reduced).mean() < 3  # the same picture, not merely the same shape


def test_random_resized_box_follows_the_inception_recipe():
    rng = np.random.default_rng(0)
    boxes = np.array([random_resized_box(375, 500, rng) for _ in range(4000)])
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 375).all() and (left + w <= 500).all()
    area = h * w / (375 * 500)
    assert area.min() >= 0.075 and area.max() <= 1.0
    log_aspect = np.log(w / h)
    assert log_aspect.min() >= np.log(3 / 4) - 0.05 and log_aspect.max() <= np.log(4 / 3) + 0.05
    square = np.array([random_resized_box(400, 400, rng)[2:] for _ in range(4000)])
    assert abs(np.median(np.log(square[:, 1] / square[:, 0]))) < 0.03  # log-uniform: wide and tall alike
    assert random_resized_box(10, 1000, rng) == (0, 493, 10, 13)  # no draw fits: centre, aspect 4/3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_workers_preprocess_exactly_as_the_in_memory_loader(dtype):
    from npxception.data import preprocess
    from npxception.data.streaming.pool import to_model_input

    every_value = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    expected = preprocess(every_value, dtype)
    assert to_model_input(every_value, dtype).dtype == expected.dtype
    assert np.array_equal(to_model_input(every_value, dtype), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_a_worker_stores_each_row_as_the_in_memory_loader_preprocesses_it(dtype):
    from npxception.data import preprocess
    from npxception.data.streaming.pool import store

    every_value = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    out = np.full((2, 16, 16, 3), 7, dtype=dtype)
    store(every_value, out[1])  # in place, into a row of the batch
    expected = every_value if dtype == np.uint8 else preprocess(every_value[None], dtype)[0]
    assert np.array_equal(out[1], expected) and (out[0] == 7).all()


def test_center_box_and_crop_fraction():
    assert center_box(375, 500, 0.8975) == pytest.approx((19.21875, 81.71875, 336.5625, 336.5625))
    assert EVAL_CROP_FRACTION == 0.8975
    with pytest.raises(ValueError, match="crop_fraction"):
        Transform(32, train=False, crop_fraction=1.5)


# --------------------------------------------------------------------------- determinism and resume

def test_batches_do_not_depend_on_the_worker_count(folder):
    data = StreamingDataset(folder_index(folder), 16)
    serial = _epoch(data, 0)
    assert [len(y) for _, y in serial] == [6] * 6 + [4]
    _same(serial, _epoch(data, 1))
    _same(serial, _epoch(data, 2))
    assert not np.array_equal(serial[0][0], _epoch(data, 0, epoch=2)[0][0])  # a new epoch, new crops


def test_resume_mid_epoch_and_row_ranges_are_bit_identical(folder):
    data = StreamingDataset(folder_index(folder), 16)
    full = _epoch(data, 2)
    _same(full[4:], _epoch(data, 2, start=4))
    rows = _epoch(data, 2, rows=slice(2, 5))
    _same([(x[2:5], y[2:5]) for x, y in full], rows)


def test_evaluation_is_the_center_crop_in_file_order(folder):
    data = StreamingDataset(folder_index(folder), 16, workers=0)
    batches = _epoch(data, 0, shuffle=False, augment=False)
    assert np.array_equal(np.concatenate([y for _, y in batches]), data.labels)
    assert np.array_equal(batches[0][0], _epoch(data, 0, epoch=5, shuffle=False, augment=False)[0][0])


# --------------------------------------------------------------------------- memory

def _peak_bytes(make):
    tracemalloc.start()
    try:
        for _ in make():
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_as_the_dataset_grows_tenfold(tmp_path):
    small, large = make_folder(tmp_path / "n30", 30, png_every=0), make_folder(tmp_path / "n300", 300, png_every=0)

    def streamed(root):
        return lambda: StreamingDataset(folder_index(root, cache=False), 32, workers=0).loader(
            10, shuffle=True, augment=True).epoch(0)

    def in_memory(root):  # the reference the test must be able to tell apart
        return lambda: Loader(load_image_folder(root, 32), 10, shuffle=True, prefetch=0).epoch(0)

    for warm_up in (streamed(small), in_memory(small)):  # first-use imports and caches are not the dataset
        _peak_bytes(warm_up)
    assert _peak_bytes(streamed(large)) < 1.3 * _peak_bytes(streamed(small))
    assert _peak_bytes(in_memory(large)) > 3 * _peak_bytes(in_memory(small))


# --------------------------------------------------------------------------- bad files and dead workers

@pytest.fixture()
def with_bad_files(tmp_path):
    root = make_folder(tmp_path / "bad", 12)
    (root / "class1" / "garbage.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    truncated = jpeg_bytes(picture(np.random.default_rng(1), 40, 40))
    (root / "class2" / "truncated.jpg").write_bytes(truncated[:len(truncated) // 2])
    return root


@pytest.mark.parametrize("workers", [0, 2])
def test_an_unreadable_file_is_named(with_bad_files, workers):
    data = StreamingDataset(folder_index(with_bad_files), 16, workers=workers)
    with pytest.raises(DatasetError, match=r"(garbage|truncated)\.jpg: cannot read.*--skip-bad-images"):
        _epoch(data, workers, batch_size=14)


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_bad_images_logs_each_file_and_drops_it(with_bad_files, workers, caplog):
    data = StreamingDataset(folder_index(with_bad_files), 16, skip_bad=True, workers=workers)
    with caplog.at_level(logging.WARNING, logger="npxception.data"):
        batches = _epoch(data, workers, batch_size=14, shuffle=False, augment=False)
    assert [len(y) for _, y in batches] == [12]
    assert sorted(r.getMessage().split(":")[0].rsplit("/", 1)[1] for r in caplog.records) == \
        ["garbage.jpg", "truncated.jpg"]


def test_a_killed_worker_raises_instead_of_hanging(tmp_path):
    root = make_folder(tmp_path / "kill", 64, png_every=0)
    data = StreamingDataset(folder_index(root), 16, workers=2)
    batches = data.loader(4, prefetch=2).epoch(0)
    next(batches)
    victim = next(p for p in mp.active_children() if p.name.startswith("npxception-data-"))
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(timeout=5)
    with pytest.raises(WorkerError, match=r"data worker \d \(pid \d+\) died \(killed by SIGKILL\)"):
        for _ in batches:
            pass
    assert not [p for p in mp.active_children() if p.name.startswith("npxception-data-")]


def test_a_crash_in_a_worker_is_one_line(folder, monkeypatch):
    from npxception.data.streaming import pool

    def broken(*args):
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(pool, "fill", broken)  # forked workers inherit the patched module
    with pytest.raises(WorkerError, match=r"^data worker \d failed: RuntimeError: decoder bug$"):
        _epoch(StreamingDataset(folder_index(folder), 16), 2)


def test_workers_are_gone_after_an_abandoned_epoch(folder):
    batches = StreamingDataset(folder_index(folder), 16, workers=2).loader(4).epoch(0)
    next(batches)
    assert [p for p in mp.active_children() if p.name.startswith("npxception-data-")]
    batches.close()
    assert not [p for p in mp.active_children() if p.name.startswith("npxception-data-")]


def test_bad_arguments_are_refused(folder):
    index = folder_index(folder)
    with pytest.raises(ValueError, match="workers must be >= 0"):
        StreamingDataset(index, 16, workers=-1)
    with pytest.raises(ValueError, match="rows must be a slice"):
        StreamingDataset(index, 16).loader(4, rows=[1, 2])
    with pytest.raises(ValueError, match="start must be in"):
        StreamingDataset(index, 16, workers=0).loader(4).epoch(0, start=99)
