"""Every byte accounted for: truncated shards, links, duplicate keys, 16-bit images, out-of-range
labels, replaced pixels on resume, damaged and read-only index caches, crafted pickles."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import pickle
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from npxception.data import DatasetError, DataSpec, describe_dataset, load_cifar10, load_image_folder, read_image
from npxception.data.streaming import StreamingDataset, decode, folder_index, shard_index
from tests.streaming_data import make_folder

# --------------------------------------------------------------------------- helpers


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _tiny_png(i: int) -> bytes:
    return _png(np.full((6, 6, 3), i * 20 % 256, np.uint8))


def _write_tar(path: Path, entries) -> list[tarfile.TarInfo]:
    """`entries`: (name, bytes) for regular files, or a TarInfo (a link, a directory) as it is."""
    with tarfile.open(path, "w") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
                continue
            name, data = entry
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with tarfile.open(path) as tar:
        return tar.getmembers()


def _samples(count: int) -> list[tuple[str, bytes]]:
    return [e for i in range(count) for e in ((f"s{i}.png", _tiny_png(i)), (f"s{i}.cls", str(i % 3).encode()))]


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _one_line(error) -> str:
    text = str(error.value if hasattr(error, "value") else error)
    assert "\n" not in text, text
    return text


# --------------------------------------------------------------------------- 1. truncated shards

def _cut(tmp_path, where: str) -> tuple[Path, int, int]:
    """A 4-sample shard cut `where`; returns (path, the byte it now ends at, samples complete before the cut)."""
    path = tmp_path / f"cut-{where}.tar"
    members = _write_tar(path, _samples(4))
    third_image = members[4]  # s2.png
    last = members[-1]
    cut = {"header": third_image.offset + 100,  # inside s2.png's header block
           "data": third_image.offset_data + 10,  # inside s2.png's bytes
           "end marker": last.offset_data + 512}  # after s3.cls, before the two zero blocks
    size = cut[where]
    with open(path, "r+b") as f:
        f.truncate(size)
    return path, size, 4 if where == "end marker" else 2


@pytest.mark.parametrize("where", ["header", "data", "end marker"])
def test_a_truncated_shard_is_an_error_naming_the_shard_and_the_byte(tmp_path, where):
    path, size, _ = _cut(tmp_path, where)
    with pytest.raises(DatasetError) as error:
        shard_index(str(path), cache=False)
    text = _one_line(error)
    assert text.startswith(f"{path}: cut or damaged at byte {size}: ") and "--skip-bad-images" in text


@pytest.mark.parametrize("where", ["header", "data", "end marker"])
def test_skip_bad_images_keeps_a_truncated_shards_complete_samples_with_a_warning(tmp_path, where, caplog):
    path, size, kept = _cut(tmp_path, where)
    spec = DataSpec("shards", data_dir=str(path), image_size=6, skip_bad_images=True)
    from npxception.data.streaming.split import spec_index  # what --skip-bad-images reaches

    with caplog.at_level(logging.WARNING, logger="npxception.data"):
        index = spec_index(spec)
    assert len(index) == kept
    (record,) = [r for r in caplog.records if r.name == "npxception.data"]
    assert str(path) in record.getMessage() and f"at byte {size}" in record.getMessage()
    assert f"{kept} samples kept" in record.getMessage()
    assert not list(tmp_path.glob(".npxception-index*"))  # not cached: the next run warns again


def test_a_corrupt_member_header_in_the_middle_is_named(tmp_path):
    path = tmp_path / "corrupt.tar"
    members = _write_tar(path, _samples(3))
    with open(path, "r+b") as f:
        f.seek(members[2].offset + 148)  # s1.png's header checksum: tarfile would stop here silently
        f.write(b"garbage!")
    with pytest.raises(DatasetError, match=rf"corrupt.tar: cut or damaged at byte {members[2].offset}: an "
                                           r"unreadable member header"):
        shard_index(str(path), cache=False)


# --------------------------------------------------------------------------- 2. high bit depth

SIXTEEN = np.array([[0, 255, 256, 257, 1000, 32768, 65280, 65535]], dtype=np.uint16)
EIGHT = (SIXTEEN >> 8).astype(np.uint8)  # the high byte, as Pillow keeps for 16-bit RGB PNGs


def _png16(pixels: np.ndarray, mode: str = "I;16") -> bytes:
    image = Image.frombytes(mode, pixels.shape[::-1], pixels.astype(">u2" if mode == "I;16B" else "<u2").tobytes())
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_16_bit_greyscale_pngs_are_scaled_to_8_bits_not_clipped(tmp_path, mode):
    data = _png16(SIXTEEN, mode)
    expected = np.repeat(EIGHT[..., None], 3, axis=2)
    assert np.array_equal(decode(data, reduced=False), expected)  # the streamed folders' and shards' decode
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(data)
    assert np.array_equal(read_image(tmp_path / "a" / "x.png"), expected)  # the in-memory folder reader
    assert np.array_equal(load_image_folder(tmp_path).images[0], expected)


def test_32_bit_integer_greyscale_is_read_as_16_bit():
    buf = io.BytesIO()
    Image.fromarray(np.array([[0, 256, 65535, 70000, -5]], dtype=np.int32)).save(buf, "TIFF")  # mode "I"
    assert decode(buf.getvalue())[0, :, 0].tolist() == [0, 1, 255, 255, 0]


def test_a_16_bit_png_in_a_shard_reaches_the_batch_scaled(tmp_path):
    path = tmp_path / "deep.tar"
    pixels = np.tile(SIXTEEN, (8, 1))  # 8 x 8
    _write_tar(path, [("k.png", _png16(pixels)), ("k.cls", b"0")])
    data = StreamingDataset(shard_index(str(path), cache=False), 8, workers=0, crop_fraction=1.0)
    x, _ = next(data.loader(1).epoch(0))
    assert np.array_equal(np.rint((x[0, :, :, 0] + 1) * 127.5).astype(np.uint8), np.tile(EIGHT, (8, 1)))


# --------------------------------------------------------------------------- 3. members left out

@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_a_link_member_in_a_shard_is_an_error_or_a_counted_warning(tmp_path, kind, caplog):
    path = tmp_path / "links.tar"
    _write_tar(path, _samples(2) + [_link("s9.png", "s0.png", kind), ("s9.cls", b"1")])
    with pytest.raises(DatasetError) as error:
        shard_index(str(path), cache=False)
    assert f"{path}: 1 member(s) not regular files" in _one_line(error) and "'s9.png'" in str(error.value)
    with caplog.at_level(logging.WARNING, logger="npxception.data"):
        assert len(shard_index(str(path), cache=False, skip_bad=True)) == 2
    (message,) = [r.getMessage() for r in caplog.records]
    assert "s9.png" in message and "2 samples kept" in message


def test_directory_and_metadata_members_are_not_samples(tmp_path):
    folder = tarfile.TarInfo("d")
    folder.type = tarfile.DIRTYPE
    path = tmp_path / "meta.tar"
    _write_tar(path, [folder, ("d/s0.json", b"{}"), ("d/s0.png", _tiny_png(0)), ("d/s0.cls", b"0")])
    assert len(shard_index(str(path), cache=False)) == 1


@pytest.mark.parametrize("entries, message", [
    ([("k.jpg", b"x"), ("k.png", b"y"), ("k.cls", b"0")], r"sample 'k' has two images, 'k.jpg' and 'k.png'"),
    ([("k.png", b"x"), ("k.cls", b"0"), ("k.png", b"y")], r"sample 'k' has two images, 'k.png' and 'k.png'"),
    ([("k.png", b"x"), ("k.cls", b"0"), ("k.cls", b"1")], r"sample 'k' has two .cls labels"),
])
def test_two_images_or_labels_for_one_key_are_refused(tmp_path, entries, message):
    path = tmp_path / "dup.tar"
    _write_tar(path, entries)
    with pytest.raises(DatasetError, match=f"^{path}: {message}.*duplicate keys"):
        shard_index(str(path), cache=False)
    with pytest.raises(DatasetError, match=f"^{path}: {message}"):  # no choice between the two is right
        shard_index(str(path), cache=False, skip_bad=True)


def test_a_label_without_an_image_is_named(tmp_path):
    path = tmp_path / "orphan.tar"
    _write_tar(path, _samples(1) + [("k.bmp", _tiny_png(0)), ("k.cls", b"1")])
    with pytest.raises(DatasetError, match=r"orphan.tar: sample 'k' has a .cls label but no image \(.jpg"):
        shard_index(str(path), cache=False)


def _untidy_folder(root: Path) -> Path:
    make_folder(root, 4, classes=2)
    (root / "class0" / "notes.txt").write_text("x")
    (root / "class1" / "nested").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "class1" / "nested" / "lost.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "loose.png")
    (root / "README.md").write_text("not a sample")  # ignored: a folder's own files are not images
    (root / "class0" / ".DS_Store").write_bytes(b"")  # hidden: ignored
    return root


def test_folder_entries_left_out_are_counted_and_named(tmp_path):
    root = _untidy_folder(tmp_path / "untidy")
    expected = f"{root}: 3 entries left out"
    for build in (lambda: folder_index(root), lambda: folder_index(root), lambda: load_image_folder(root, 8)):
        with pytest.warns(UserWarning, match=expected) as caught:  # the second from the cache
            assert len(build()) == 4
        text = str(caught[0].message)
        assert "class0/notes.txt" in text and "class1/nested/" in text and "loose.png" in text


# --------------------------------------------------------------------------- 4. labels

@pytest.mark.parametrize("text, shown", [(b"100000", "label 100000 is out of range"),
                                         (b"1000000\n", "label 1000000 is out of range"),
                                         (b"9" * 5000, "got 5000 bytes")])
def test_a_label_out_of_range_is_refused_naming_shard_member_and_value(tmp_path, text, shown):
    path = tmp_path / "labels.tar"
    _write_tar(path, _samples(1) + [("big.png", _tiny_png(1)), ("big.cls", text)])
    with pytest.raises(DatasetError) as error:
        shard_index(str(path), cache=False)
    assert _one_line(error).startswith(f"{path}:big.cls: ") and shown in str(error.value)


def test_a_huge_label_fails_before_anything_is_sized_by_it(tmp_path):
    """99999999999 would make a 10^11-entry class list: run where memory is capped at 2 GiB."""
    path = tmp_path / "huge.tar"
    _write_tar(path, [("k.png", _tiny_png(1)), ("k.cls", b"99999999999")])
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
            "from npxception.data.streaming import shard_index\n"
            "try:\n    shard_index(sys.argv[1], cache=False)\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # thread stacks count towards the cap
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.stdout.strip() == (f"DatasetError {path}:k.cls: label 99999999999 is out of range; at most 100000 "
                                   "classes (labels 0..99999) are accepted (number the classes from 0)"), done


# --------------------------------------------------------------------------- 5. what a checkpoint records

NEW_KEYS = ("data_bytes", "sizes_digest", "mtimes_digest", "content_digest")


def _replace_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    stat = path.stat()
    assert len(data) == stat.st_size
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _streamed(index) -> StreamingDataset:
    return StreamingDataset(index, 16, workers=0)


def test_a_streamed_folder_description_sees_replaced_pixels(tmp_path):
    root = make_folder(tmp_path / "f", 6, png_every=0)
    before = describe_dataset(_streamed(folder_index(root)))
    json.dumps(before)
    victim = root / "class1" / "img0001.jpg"
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF  # the end of the entropy-coded pixels, same size, same time
    _replace_keeping_size_and_mtime(victim, bytes(data))
    after = describe_dataset(_streamed(folder_index(root)))
    assert after["digest"] == before["digest"] and after["mtimes_digest"] == before["mtimes_digest"]
    assert after["content_digest"] != before["content_digest"]
    os.utime(victim, ns=(0, 1))
    assert describe_dataset(_streamed(folder_index(root)))["mtimes_digest"] != before["mtimes_digest"]


def test_a_shard_description_sees_replaced_pixels(tmp_path):
    path = tmp_path / "p.tar"
    members = _write_tar(path, _samples(3))
    before = describe_dataset(_streamed(shard_index(str(path))))
    data = bytearray(path.read_bytes())
    data[members[2].offset_data + 40] ^= 0xFF  # inside s1.png
    _replace_keeping_size_and_mtime(path, bytes(data))
    after = describe_dataset(_streamed(shard_index(str(path))))
    assert after["digest"] == before["digest"] and after["sizes_digest"] == before["sizes_digest"]
    assert after["content_digest"] != before["content_digest"]


def test_a_resumed_run_refuses_a_folder_whose_pixels_were_replaced(tmp_path):
    from npxception.train.resume import check_same_data

    root = make_folder(tmp_path / "f", 6, png_every=0)
    train, val = _streamed(folder_index(root)).subset(slice(0, 4)), _streamed(folder_index(root)).subset(slice(4, 6))
    meta = {"data_description": json.loads(json.dumps({"train": describe_dataset(train),
                                                       "val": describe_dataset(val)}))}
    check_same_data(meta, {"train": describe_dataset(train), "val": describe_dataset(val)})
    other = make_folder(tmp_path / "other", 1, seed=5, png_every=0) / "class0" / "img0000.jpg"
    Path(folder_index(root).name(0)).write_bytes(other.read_bytes())
    with pytest.raises(ValueError, match="the train data differs"):
        check_same_data(meta, {"train": describe_dataset(train), "val": describe_dataset(val)})


def test_the_streamed_description_keeps_its_old_keys_and_digest(tmp_path):
    """A checkpoint written before the file keys holds count, image_shape, class_names and digest,
    the last over labels and names only: the same data must still give those exact values."""
    root = make_folder(tmp_path / "f", 5)
    index = folder_index(root)
    description = describe_dataset(_streamed(index))
    old = hashlib.blake2b(digest_size=16)
    old.update(np.ascontiguousarray(index.labels, dtype="<i8").tobytes())
    old.update(index.names_blob)
    assert description["digest"] == old.hexdigest()
    assert set(description) == {"count", "image_shape", "class_names", "digest", *NEW_KEYS}
    in_memory = describe_dataset(load_image_folder(root, 16))
    assert set(in_memory) == {"count", "image_shape", "class_names", "digest"}  # pixels: already in the digest


def test_describing_reads_a_bounded_sample_of_the_files(tmp_path, monkeypatch):
    from npxception.data.streaming import fingerprint

    root = make_folder(tmp_path / "f", 12, png_every=0)
    opened = []
    real_open = open
    monkeypatch.setattr(fingerprint, "MAX_CONTENT_SAMPLES", 5)
    monkeypatch.setattr(fingerprint, "open", lambda path, *a: opened.append(path) or real_open(path, *a),
                        raising=False)
    describe_dataset(_streamed(folder_index(root)))
    assert len(opened) == 5


# --------------------------------------------------------------------------- 6. the index cache

@pytest.fixture()
def home_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    return tmp_path / "home-cache" / "npxception"


def _read_only(monkeypatch, root: Path) -> None:
    """Writes under `root` fail with EROFS, as on a read-only mount (root ignores chmod)."""
    import builtins
    import pathlib

    def refuse(path):
        if str(path).startswith(str(root)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))

    real_open, real_unlink, real_replace = builtins.open, pathlib.Path.unlink, os.replace

    def guarded_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_unlink(self, missing_ok=False):
        refuse(self)
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(pathlib.Path, "unlink", guarded_unlink)
    monkeypatch.setattr(os, "replace", lambda a, b: refuse(a) or refuse(b) or real_replace(a, b))


def test_a_read_only_folder_caches_its_index_in_the_fallback_place(tmp_path, monkeypatch, home_cache):
    root = make_folder(tmp_path / "ro", 6)
    _read_only(monkeypatch, root)
    index = folder_index(root)
    assert len(index) == 6 and not (root / ".npxception-index.npz").exists()
    (cached,) = home_cache.glob("index-*.npz")
    from npxception.data.streaming import index as index_module

    monkeypatch.setattr(index_module, "list_image_folder", None)  # a rebuild would list the folder again
    assert folder_index(root).names_blob == index.names_blob


def test_a_folder_without_write_bits_is_left_alone_even_by_root(tmp_path, home_cache):
    root = make_folder(tmp_path / "shared", 6)
    root.chmod(0o555)
    try:
        assert len(folder_index(root)) == 6
        assert not list(root.glob(".npxception-index*")) and len(list(home_cache.glob("index-*.npz"))) == 1
    finally:
        root.chmod(0o755)


@pytest.fixture()
def read_only_mount(tmp_path):
    """A real read-only bind mount of a folder, where the test may mount (root in a container)."""
    source, target = tmp_path / "src", tmp_path / "mnt"
    make_folder(source, 6)
    target.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "--bind", "-o", "ro", str(source), str(target)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot make a read-only bind mount here")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_a_read_only_mount_caches_its_index_in_the_fallback_place(read_only_mount, home_cache):
    with pytest.raises(OSError, match="Read-only"):
        (read_only_mount / "probe").write_bytes(b"")
    assert len(folder_index(read_only_mount)) == 6
    assert len(list(home_cache.glob("index-*.npz"))) == 1


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "inconsistent"])
def test_a_damaged_index_cache_is_rebuilt_with_a_note(tmp_path, damage, home_cache):
    root = make_folder(tmp_path / "d", 6)
    index = folder_index(root)
    cache = root / ".npxception-index.npz"
    data = cache.read_bytes()
    if damage == "truncated":
        cache.write_bytes(data[:len(data) // 2])
    elif damage == "random bytes":
        cache.write_bytes(np.random.default_rng(0).bytes(len(data)))
    else:
        with np.load(cache) as f:
            arrays = dict(f)
        np.savez(cache, **{**arrays, "labels": arrays["labels"][:-1]})
    with pytest.warns(UserWarning) as caught:
        again = folder_index(root)
    (note,) = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert note.startswith(f"index cache {cache}: damaged (") and note.endswith("rebuilding the index")
    assert "\n" not in note and again.names_blob == index.names_blob
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder_index(root)  # rebuilt and written again: no note the next time


def test_a_stale_index_cache_is_rebuilt_with_a_note(tmp_path, home_cache):
    root = make_folder(tmp_path / "s", 6)
    folder_index(root)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "class0" / "new.png")
    with pytest.warns(UserWarning, match=rf"index cache {root}/.npxception-index.npz: out of date"):
        assert len(folder_index(root)) == 7


def test_shard_lists_in_one_folder_keep_their_own_caches(tmp_path, home_cache):
    """train-*.tar and val-*.tar side by side must not overwrite one cache file in turn."""
    _write_tar(tmp_path / "train-0.tar", _samples(3))
    _write_tar(tmp_path / "val-0.tar", _samples(2))
    for _ in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "out of date" on the second round
            assert len(shard_index(str(tmp_path / "train-*.tar"))) == 3
            assert len(shard_index(str(tmp_path / "val-*.tar"))) == 2
    assert len(list(tmp_path.glob(".npxception-index*.npz"))) == 2


# --------------------------------------------------------------------------- 7. crafted pickles, checkpoints

class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _cifar_folder(root: Path, crafted: Path | None = None, protocol: int = 2) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": b"training batch", b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8),
                 b"labels": [1, int(rng.integers(10))], b"filenames": [b"a.png", b"b.png"]}
        if crafted is not None and name == "data_batch_1":
            batch[b"labels"] = _RunsCode(crafted)
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    return folder


def test_a_crafted_cifar_pickle_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "ran"
    folder = _cifar_folder(tmp_path, crafted=marker)
    with pytest.raises(DatasetError) as error:
        load_cifar10(tmp_path)
    assert not marker.exists()
    assert _one_line(error).startswith(f"{folder / 'data_batch_1'}: refused: the pickle asks for 'posix.system'")


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_as_written_by_python_and_numpy_still_load(tmp_path, protocol):
    _cifar_folder(tmp_path, protocol=protocol)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "r+b") as f:  # NumPy integers in the labels
        batch = pickle.load(f)
        batch[b"labels"] = list(np.asarray(batch[b"labels"], dtype=np.int64))
        f.seek(0)
        pickle.dump(batch, f, protocol=protocol)
    assert len(load_cifar10(tmp_path)) == 10 and len(load_cifar10(tmp_path, "test")) == 2


def test_the_cli_refuses_a_crafted_cifar_batch_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    folder = _cifar_folder(tmp_path / "data", crafted=marker)
    done = subprocess.run([sys.executable, "-m", "npxception", "train", "--dataset", "cifar10", "--data-dir",
                           str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--quiet"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1 and not marker.exists() and not (tmp_path / "run").exists()
    assert done.stderr.strip().splitlines() == [
        f"npxception train: error: {folder / 'data_batch_1'}: refused: the pickle asks for 'posix.system', which a "
        "CIFAR-10 batch never holds (only arrays, lists, bytes and numbers); a crafted pickle runs code when loaded"]


@pytest.mark.parametrize("content", ["random bytes", "pickle", "object array"])
def test_an_unreadable_checkpoint_is_one_line_without_allow_pickle_advice(tmp_path, content):
    from npxception.io.npz import CheckpointError, load_checkpoint

    path = tmp_path / "checkpoint.npz"
    if content == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif content == "pickle":
        path.write_bytes(pickle.dumps({"model": 1}))
    else:
        np.savez(path, **{"model/w": np.array([object()], dtype=object), "__meta__": np.asarray("{}")})
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    text = _one_line(error)
    assert text.startswith(f"{path}: ") and "allow_pickle" not in text and "pickle.load" not in text


# --------------------------------------------------------------------------- 8. bad images are named

def test_an_unreadable_image_is_named_by_its_file_not_an_in_memory_buffer(tmp_path):
    root = make_folder(tmp_path / "bad", 3)
    (root / "class0" / "broken.png").write_bytes(b"not an image at all")
    with pytest.raises(DatasetError) as error:
        list(StreamingDataset(folder_index(root), 8, workers=0).loader(4).epoch(0))
    text = _one_line(error)
    assert text.startswith(f"{root / 'class0' / 'broken.png'}: cannot read as an image") and "BytesIO" not in text


def test_an_unreadable_shard_member_is_named_shard_and_member(tmp_path):
    path = tmp_path / "bad.tar"
    _write_tar(path, [("k.png", b"not an image at all"), ("k.cls", b"0")])
    with pytest.raises(DatasetError) as error:
        list(StreamingDataset(shard_index(str(path), cache=False), 8, workers=0).loader(1).epoch(0))
    text = _one_line(error)
    assert text.startswith(f"{path}:k.png: cannot read as an image") and "BytesIO" not in text
