"""Datasets (built-in shapes, CIFAR-10 pickles, .npz, image folders), their errors, and the Loader."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest
from PIL import Image

from npxception.data import (
    Dataset, DatasetError, DataSpec, Loader, holdout_split, load_cifar10, load_image_folder, load_npz,
    load_split, make_shapes, preprocess,
)
from npxception.data.augment import random_crop, random_flip
from npxception.data.shapes import CLASS_NAMES


# --------------------------------------------------------------------------- built-in shapes

def test_shapes_are_deterministic_balanced_and_any_size():
    a, b = make_shapes(40, 20, seed=3), make_shapes(40, 20, seed=3)
    assert a.images.shape == (40, 20, 20, 3) and a.images.dtype == np.uint8
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert np.bincount(a.labels, minlength=10).tolist() == [4] * 10
    assert a.class_names == CLASS_NAMES
    assert not np.array_equal(make_shapes(40, 20, seed=4).images, a.images)


def test_shapes_defeat_a_linear_model():
    """Least-squares one-vs-all on raw pixels stays far below what a small CNN reaches (>95%)."""
    train, test = make_shapes(1500, 16, seed=0), make_shapes(500, 16, seed=1)

    def features(d):
        x = d.images.reshape(len(d), -1).astype(np.float64) / 255
        return np.hstack([x, np.ones((len(d), 1))])

    targets = np.eye(10)[train.labels]
    x = features(train)
    w = np.linalg.solve(x.T @ x + 10.0 * np.eye(x.shape[1]), x.T @ targets)
    accuracy = np.mean((features(test) @ w).argmax(axis=1) == test.labels)
    assert accuracy < 0.5, accuracy


# --------------------------------------------------------------------------- Dataset checks

def test_dataset_checked_rejects_bad_contents():
    images = np.zeros((3, 4, 4, 3), np.uint8)
    with pytest.raises(DatasetError, match="3 images but 2 labels"):
        Dataset.checked(images, np.array([0, 1]), ["a", "b"], "src")
    with pytest.raises(DatasetError, match=r"labels must be in \[0, 2\).*\[0, 2\]"):
        Dataset.checked(images, np.array([0, 1, 2]), ["a", "b"], "src")
    with pytest.raises(DatasetError, match="uint8"):
        Dataset.checked(images.astype(np.float32), np.array([0, 1, 1]), ["a", "b"], "src")
    with pytest.raises(DatasetError, match=r"\(N, H, W, 3\)"):
        Dataset.checked(np.zeros((3, 4, 4), np.uint8), np.array([0, 1, 1]), ["a", "b"], "src")


def test_holdout_split_is_seeded_and_disjoint():
    data = Dataset.checked(np.arange(20, dtype=np.uint8).reshape(20, 1, 1, 1).repeat(3, axis=3),
                           np.arange(20) % 2, ["a", "b"], "src")
    train, val = holdout_split(data, 5, seed=1)
    again, _ = holdout_split(data, 5, seed=1)
    ids = lambda d: set(d.images[:, 0, 0, 0].tolist())  # noqa: E731
    assert len(val) == 5 and len(train) == 15
    assert ids(train).isdisjoint(ids(val)) and ids(train) | ids(val) == set(range(20))
    assert ids(again) == ids(train)
    with pytest.raises(DatasetError, match="cannot hold out 20 of 20"):
        holdout_split(data, 20, seed=1)


# --------------------------------------------------------------------------- .npz

def _write_npz(path, n=12, **overrides):
    arrays = dict(images=np.random.default_rng(0).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
                  labels=np.arange(n) % 3)
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return arrays


def test_npz_round_trip_and_split(tmp_path):
    arrays = _write_npz(tmp_path / "d.npz", class_names=np.array(["x", "y", "z"]))
    data = load_npz(tmp_path / "d.npz")
    np.testing.assert_array_equal(data.images, arrays["images"])
    assert data.class_names == ("x", "y", "z") and data.labels.dtype == np.int64
    train, val = load_split(DataSpec("npz", data_path=str(tmp_path / "d.npz"), val_size=4))
    assert (len(train), len(val)) == (8, 4)


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"),
    ("directory", "expected a file"),
    ("corrupt", "not an .npz archive"),
    ("no labels", r"missing \['labels'\]"),
    ("lengths", "12 images but 11 labels"),
    ("range", r"labels must be in \[0, 3\)"),
])
def test_npz_errors(tmp_path, case, message):
    path = tmp_path / "d.npz"
    if case == "directory":
        path.mkdir()
    elif case == "corrupt":
        path.write_bytes(b"\x93NUMPY garbage that is not a zip archive")
    elif case == "no labels":
        _write_npz(path, labels=None)
    elif case == "lengths":
        _write_npz(path, labels=np.arange(11) % 3)
    elif case == "range":
        _write_npz(path, labels=np.array([0, 1, 2, 5] * 3), class_names=np.array(["a", "b", "c"]))
    with pytest.raises(DatasetError, match=message) as info:
        load_npz(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- CIFAR-10 pickles

def _write_cifar(root, per_batch=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": list(rng.integers(0, 10, per_batch))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    return folder


def test_cifar10_reads_channel_planar_rows_as_nhwc(tmp_path):
    folder = _write_cifar(tmp_path)
    train, test = load_cifar10(tmp_path, "train"), load_cifar10(folder, "test")
    assert train.images.shape == (20, 32, 32, 3) and test.images.shape == (4, 32, 32, 3)
    with open(folder / "data_batch_1", "rb") as f:
        row = pickle.load(f, encoding="bytes")[b"data"][0]
    # Pixel (y=2, x=5): R at 2*32+5, G 1024 later, B 2048 later.
    assert train.images[0, 2, 5].tolist() == [row[69], row[1024 + 69], row[2048 + 69]]
    assert train.class_names[0] == "airplane"


def test_cifar10_errors(tmp_path):
    with pytest.raises(DatasetError, match="no such directory"):
        load_cifar10(tmp_path / "nope")
    folder = _write_cifar(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="missing data_batch_3"):
        load_cifar10(folder)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="data_batch_3: not a CIFAR-10 Python batch"):
        load_cifar10(folder)


# --------------------------------------------------------------------------- image folders

def _write_folder(root, sizes=((10, 12), (7, 7))):
    for label, name in enumerate(["cat", "dog"]):
        (root / name).mkdir(parents=True)
        for i, size in enumerate(sizes):
            colour = (200 * label, 50 + i, 0)
            Image.new("RGB", size, colour).save(root / name / f"{i}.png")


def test_image_folder_resizes_and_labels_by_subfolder(tmp_path):
    _write_folder(tmp_path)
    data = load_image_folder(tmp_path, size=9)
    assert data.images.shape == (4, 9, 9, 3) and data.class_names == ("cat", "dog")
    assert data.labels.tolist() == [0, 0, 1, 1]
    assert data.images[2, 4, 4].tolist() == [200, 50, 0]


def test_image_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="one subfolder per class"):
        load_image_folder(tmp_path)
    _write_folder(tmp_path)
    with pytest.raises(DatasetError, match="different sizes"):
        load_image_folder(tmp_path)
    (tmp_path / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="broken.png: cannot read as an image"):
        load_image_folder(tmp_path, size=8)


def test_data_spec_needs_its_path():
    with pytest.raises(DatasetError, match="--dataset npz needs --data-path"):
        DataSpec("npz")
    with pytest.raises(DatasetError, match="dataset must be one of"):
        DataSpec("mnist")


# --------------------------------------------------------------------------- the Loader

@pytest.fixture(scope="module")
def small_set():
    return make_shapes(23, 8, seed=0)


def test_preprocess_is_keras_xception():
    x = preprocess(np.array([[[[0, 127, 255]]]], dtype=np.uint8))
    assert x.dtype == np.float32
    np.testing.assert_allclose(x.ravel(), [-1.0, 127 / 127.5 - 1, 1.0], rtol=1e-6)


def test_loader_batches_cover_each_sample_once_with_a_partial_last(small_set):
    loader = Loader(small_set, 5, shuffle=True, seed=7, prefetch=0)
    batches = list(loader.epoch(0))
    assert len(loader) == 5 and [len(y) for _, y in batches] == [5, 5, 5, 5, 3]
    seen = np.concatenate([x for x, _ in batches])
    expected = preprocess(small_set.images[loader.order(0)])
    np.testing.assert_array_equal(seen, expected)  # no augmentation unless asked
    assert sorted(loader.order(0)) == list(range(23))


def test_loader_shuffle_is_seeded_per_epoch(small_set):
    a, b = Loader(small_set, 5, shuffle=True, seed=7), Loader(small_set, 5, shuffle=True, seed=7)
    np.testing.assert_array_equal(a.order(3), b.order(3))
    assert not np.array_equal(a.order(3), a.order(4))
    assert not np.array_equal(a.order(3), Loader(small_set, 5, shuffle=True, seed=8).order(3))
    np.testing.assert_array_equal(Loader(small_set, 5).order(3), np.arange(23))


def test_loader_resumes_mid_epoch_and_prefetch_changes_nothing(small_set):
    eager = Loader(small_set, 4, shuffle=True, augment=True, seed=1, prefetch=0)
    ahead = Loader(small_set, 4, shuffle=True, augment=True, seed=1, prefetch=2)
    full = list(eager.epoch(2))
    tail = list(ahead.epoch(2, start=3))
    assert len(tail) == len(full) - 3
    for (x1, y1), (x2, y2) in zip(full[3:], tail):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def test_prefetch_thread_stops_when_the_consumer_does(small_set):
    before = threading.active_count()
    batches = Loader(small_set, 2, prefetch=1).epoch(0)
    next(batches)
    batches.close()
    assert threading.active_count() == before


def test_prefetch_forwards_worker_errors(small_set, monkeypatch):
    loader = Loader(small_set, 4, prefetch=2)

    def broken(epoch, index, order=None):
        raise RuntimeError(f"cannot make batch {index}")

    monkeypatch.setattr(loader, "batch", broken)
    with pytest.raises(RuntimeError, match="cannot make batch 0"):
        list(loader.epoch(0))


def test_augmentation_crops_within_padding_and_flips():
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, (16, 6, 6, 3), dtype=np.uint8)  # no zeros: padding is visible
    np.testing.assert_array_equal(random_crop(images, 0, rng), images)
    cropped = random_crop(images, 2, rng)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    for image, out in zip(padded, cropped):
        windows = [image[dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        assert any(np.array_equal(out, w) for w in windows)
    assert not np.array_equal(cropped, images)
    flipped = random_flip(images, rng)
    mirrored = [np.array_equal(f, i[:, ::-1]) for f, i in zip(flipped, images)]
    unchanged = [np.array_equal(f, i) for f, i in zip(flipped, images)]
    assert all(m or u for m, u in zip(mirrored, unchanged)) and any(mirrored) and any(unchanged)


def test_augmentation_only_in_training(small_set):
    plain = next(Loader(small_set, 8, augment=False).epoch(0))[0]
    augmented = next(Loader(small_set, 8, augment=True, seed=0).epoch(0))[0]
    np.testing.assert_array_equal(plain, preprocess(small_set.images[:8]))
    assert not np.array_equal(plain, augmented)


def test_the_data_package_imports_nothing_above_it():
    """Data sits below the trainer and beside the model: preprocessing comes from npxception.preprocessing."""
    import ast
    from pathlib import Path

    import npxception
    import npxception.data
    import npxception.models  # a submodule is an attribute only once imported (alone, this test is first)

    upward = {"models", "train", "cli", "nn", "io"}
    for path in Path(npxception.data.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                assert (node.module or "").split(".")[0] not in upward, f"{path.name} imports ..{node.module}"
    assert npxception.preprocess_input is npxception.models.preprocess_input
