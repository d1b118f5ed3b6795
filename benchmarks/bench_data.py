"""Data pipeline benchmark: what one process decodes and augments, what the loader delivers, the up-front decode.

    python benchmarks/bench_data.py --cifar-shards '../shared/data/cifar10-shards/cifar10-train-{000000..000009}.tar'
    python benchmarks/bench_data.py --quick   # smoke run: a few images, nothing written

Writes benchmarks/results/data_cpu.{json,md}. Two image sets:

- generated JPEGs of ImageNet's typical size (500x375, quality 90, drawn by this script: smooth
  colour fields, shapes and texture at two scales, about 100 KB each), cropped to 299;
- the CIFAR-10 training shards (32x32 JPEGs in tar shards, `--cifar-shards`; the part is skipped
  with a note without it), at 32.

For each: (1) raw: one process reading, decoding and augmenting (the training transform: Inception
crop + flip) and converting to floats, as a worker does, without the loader; (2) the streaming
loader's delivered rate with 1 and 2 workers over an epoch, pool start-up and shutdown included.
Both give images per wall-clock second and CPU seconds per image; the loader's CPU counts the
parent (RUSAGE_SELF) and its workers (RUSAGE_CHILDREN, once joined), so "loader / raw" is what the
machinery costs per image beyond the work itself. CPU time is less sensitive than wall time to
other work on a shared machine (not immune: busy neighbours slow every instruction), so each
figure is the median of interleaved repeats and the load average is recorded.

For CIFAR also: (3) the up-front decode (memory.py: whole images into a uint8 Dataset) with 1
and 2 processes, and (4) an epoch of the in-memory loader (pad-and-crop, flip, x / 127.5 - 1)
over the decoded set: what training from memory costs per image and epoch instead of (2).

Then, at 299 and 32, the transform alone with full and reduced-size JPEG decoding, and what one
GPU step of paper() needs: forward multiply-adds from the model's layer table, a training step
counted as 3 x forward, 2 FLOPs per multiply-add, against an H100 SXM's published dense peaks
(NVIDIA's H100 datasheet: 67 TFLOPS FP32, 494.7 TFLOPS TF32 tensor core without sparsity) at 100%
and at an assumed 40% utilisation. These are estimates from published numbers, not measurements.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"
H100_SXM_TFLOPS = {"FP32": 67.0, "TF32 tensor (dense)": 494.7}
ASSUMED_UTILISATION = 0.4


def photo(rng: np.random.Generator, height: int = 375, width: int = 500, label: int = 0) -> np.ndarray:
    """A photograph-like uint8 image: smooth colour fields, a few soft shapes, fine texture.

    `label` tints the image and picks the shape, so a model can learn from a folder of these."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = y / height, x / width
    phase = rng.uniform(0, 2 * np.pi, 3)
    image = np.stack([np.sin(2.5 * x + phase[0]) * np.cos(1.5 * y + phase[1]),
                      np.cos(3.0 * y + phase[2]), np.sin(2.0 * (x + y) + phase[0])], axis=-1)
    image = 110 + 60 * image + 40 * np.sin(np.float32(label) + np.arange(3, dtype=np.float32))
    for _ in range(3):
        cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.2)
        d = ((y - cy) ** 2 + (x - cx) ** 2) if label % 2 == 0 else np.maximum(abs(y - cy), abs(x - cx)) ** 2
        mask = 1 / (1 + np.exp((np.sqrt(d) - r) * 60))
        image = image * (1 - mask[..., None]) + mask[..., None] * rng.uniform(0, 255, 3)
    # Texture at two scales (4-pixel blobs and single pixels) gives photographs' JPEG sizes.
    coarse = rng.normal(0, 30, (-(-height // 4), -(-width // 4), 3)).astype(np.float32)
    image += np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)[:height, :width]
    image += rng.normal(0, 12, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def write_folder(root: Path, count: int, classes: int = 10, seed: int = 0, first: int = 0) -> Path:
    """Images first..count-1 of a folder of 500x375 quality-90 JPEGs in `classes` class folders
    (image i drawn from seed (seed, i), so a folder can be written in parts, in parallel)."""
    for i in range(first, count):
        label = i % classes
        folder = root / f"class{label:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"img{i:07d}.jpg"
        if not path.exists():
            path.write_bytes(jpeg(photo(np.random.default_rng([seed, i]), label=label)))
    return root


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished (joined) children, the workers."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _measured(run) -> dict:
    """images/s (wall) and CPU s per image of `run()`, which returns the images it produced."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    count = run()
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    return {"images_per_s": count / wall, "cpu_s_per_image": cpu / count}


def _median(samples: list[dict]) -> dict:
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def raw_pass(index, size: int, batch: int):
    """One process doing a worker's work for every image of `index`, batch by batch: read, decode,
    Inception crop + flip, x / 127.5 - 1 into a float32 batch. No loader, no processes."""
    from npxception.data.streaming import Reader, Transform
    from npxception.data.streaming.pool import fill

    transform, out = Transform(size, train=True), np.empty((batch, size, size, 3), np.float32)

    def run() -> int:
        reader = Reader(index)
        for first in range(0, len(index), batch):
            fill(reader, transform, 0, 0, np.arange(first, min(first + batch, len(index))), out)
        reader.close()
        return len(index)
    return run


def loader_pass(index, size: int, batch: int, workers: int):
    """An epoch of the streaming loader (shuffled, training transform) with `workers` processes."""
    from npxception.data.streaming import StreamingDataset

    data = StreamingDataset(index, size, workers=workers)

    def run() -> int:
        return sum(len(x) for x, _ in data.loader(batch, shuffle=True, augment=True).epoch(0))
    return run


def decode_pass(index, workers: int):
    """The up-front decode of every image of `index` into memory with `workers` processes."""
    from npxception.data.streaming import materialize

    def run() -> int:
        return len(materialize(index, workers=workers, progress=False).data)
    return run


def memory_epoch_pass(data, batch: int):
    """An epoch of the in-memory loader (pad 4 and crop, flip, preprocess) in the calling thread."""
    from npxception.data import Loader

    def run() -> int:
        return sum(len(x) for x, _ in Loader(data, batch, shuffle=True, augment=True, prefetch=0).epoch(0))
    return run


def measure_set(name: str, index, size: int, batch: int, repeats: int, in_memory: bool = False) -> list[dict]:
    """The rows of one image set, each the median of `repeats` interleaved passes: raw and the
    loader with 1 and 2 workers, or (in_memory) the up-front decode with 1 and 2 processes and the
    in-memory epoch."""
    passes = {}
    if not in_memory:
        passes[("raw, one process", 0)] = raw_pass(index, size, batch)
        for workers in (1, 2):
            passes[("streaming loader", workers)] = loader_pass(index, size, batch, workers)
    else:
        from npxception.data.streaming import materialize

        for workers in (1, 2):
            passes[("up-front decode", workers)] = decode_pass(index, workers)
        decoded = materialize(index, workers=2, progress=False).data
        passes[("in-memory epoch", 0)] = memory_epoch_pass(decoded, batch)
    samples: dict = {key: [] for key in passes}
    for _ in range(repeats):
        for key, run in passes.items():
            samples[key].append(_measured(run))
    rows = []
    for (what, workers), values in samples.items():
        rows.append({"set": name, "size": size, "images": len(index), "what": what, "workers": workers,
                     **_median(values)})
        print(f"{name:>9} {size:>3} px  {what:<17} {workers}  {rows[-1]['images_per_s']:9.1f} images/s  "
              f"{1e3 * rows[-1]['cpu_s_per_image']:.3f} CPU ms per image", flush=True)
    return rows


def per_worker(images: list[bytes], size: int, reduced: bool, repeats: int) -> float:
    """Images per CPU-second of the training transform alone (bytes in memory), full or reduced decode."""
    from npxception.data.streaming import Transform, sample_rng

    transform = Transform(size, train=True, reduced_decode=reduced)
    times = []
    for r in range(repeats):
        start = time.process_time()
        for i, data in enumerate(images):
            transform(data, sample_rng(0, r, i))
        times.append(time.process_time() - start)
    return len(images) / statistics.median(times)


def gpu_need() -> dict:
    from npxception import Xception, XceptionConfig

    model = Xception(XceptionConfig.paper(), backend="numpy")
    macs = sum(row.macs for row in model.layer_table())
    step_flops = 3 * 2 * macs
    rates = {name: {"peak": tflops * 1e12 / step_flops, "at_40pct": ASSUMED_UTILISATION * tflops * 1e12 / step_flops}
             for name, tflops in H100_SXM_TFLOPS.items()}
    return {"forward_multiply_adds": macs, "training_flops_per_image": step_flops, "h100_images_per_s": rates}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few images, nothing written")
    parser.add_argument("--images", type=int, default=400, help="images in the generated folder")
    parser.add_argument("--folder", help="use this folder of JPEGs (e.g. one written by stream_memory.py)")
    parser.add_argument("--cifar-shards", help="the CIFAR-10 shards (a folder, glob or {000000..000009} range)")
    parser.add_argument("--cifar-images", type=int, default=10_000,
                        help="streamed and raw rows use the first this many CIFAR images (the decode: all)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from npxception.data.streaming import folder_index, shard_index

    count, repeats = (24, 1) if args.quick else (args.images, args.repeats)
    started = load_average()
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.folder) if args.folder else write_folder(Path(tmp) / "images", count)
        photos = folder_index(root, cache=False)
        photos = photos.subset(np.arange(min(len(photos), count)))
        rows += measure_set("generated", photos, 299, 8 if args.quick else 32, repeats)
        images = [Path(photos.name(i)).read_bytes() for i in range(min(len(photos), 100))]
        mean_kb = statistics.mean(len(b) for b in images) / 1024
    if args.cifar_shards:
        cifar = shard_index(args.cifar_shards, cache=False)
        if args.quick:
            cifar = cifar.subset(np.arange(min(len(cifar), 600)))
        rows += measure_set("CIFAR-10", cifar.subset(np.arange(min(len(cifar), args.cifar_images))), 32, 128,
                            repeats)
        rows += measure_set("CIFAR-10", cifar, 32, 128, repeats, in_memory=True)
    else:
        notes.append("CIFAR-10 part skipped: no --cifar-shards given")
        print(notes[-1], flush=True)
    transform_rows = []
    for size in (299, 32):
        for reduced in (False, True):
            rate = per_worker(images, size, reduced, repeats)
            transform_rows.append({"size": size, "decode": "reduced" if reduced else "full", "images_per_cpu_s": rate})
    result = {"machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "python": platform.python_version(), "generated_images": len(photos), "mean_jpeg_kb": mean_kb,
              "load_average_before": started, "load_average_after": load_average(), "repeats": repeats,
              "rows": rows, "transform_only": transform_rows, "gpu": gpu_need(), "notes": notes}
    if args.quick:
        print(markdown(result))
        return 0
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "data_cpu.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "data_cpu.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def _ratio_rows(result: dict) -> list[str]:
    lines = []
    raw = {(r["set"], r["images"]): r for r in result["rows"] if r["what"] == "raw, one process"}
    for r in result["rows"]:
        base = raw.get((r["set"], r["images"]))
        ratio = f"{r['cpu_s_per_image'] / base['cpu_s_per_image']:.2f}" if base and r["what"] != "in-memory epoch" \
            and r["what"] != "up-front decode" else ""
        workers = "" if r["what"] in ("raw, one process", "in-memory epoch") else r["workers"]
        lines.append(f"| {r['set']} | {r['size']} | {r['images']:,} | {r['what']} | {workers} | "
                     f"{r['images_per_s']:,.0f} | {1e3 * r['cpu_s_per_image']:.3f} | {ratio} |")
    return lines


def markdown(result: dict) -> str:
    lines = [f"Measured on the shared {result['cores']}-core machine ({result['machine']}, Python {result['python']}), "
             f"load average {result['load_average_before']} (1, 5, 15 min) before and "
             f"{result['load_average_after']} after; each figure the median of {result['repeats']} interleaved "
             "passes. Generated: 500x375 quality-90 JPEGs (mean "
             f"{result['mean_jpeg_kb']:.0f} KB) cropped to 299; CIFAR-10: the 32x32 JPEG tar shards at 32. "
             "Raw: one process reading, decoding, Inception crop + flip and x / 127.5 - 1, no loader. Loader: an "
             "epoch delivered by the streaming loader, start-up and shutdown included; its CPU counts the parent and "
             "the workers. Up-front decode: whole images into a uint8 in-memory Dataset. In-memory epoch: the "
             "in-memory loader's pad-4 crop, flip and preprocessing of the decoded set, per image and epoch.", ""]
    lines += [f"Note: {note}." for note in result["notes"]] + ([""] if result["notes"] else [])
    lines += ["| set | px | images | what | workers | images/s (wall) | CPU ms per image | CPU vs raw |",
              "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |", *_ratio_rows(result), "",
              "The transform alone (bytes in memory, no read, no float conversion), JPEG decoded at full or at "
              "reduced DCT size:", "",
              "| output | JPEG decode | images per CPU-s | vs full decode |", "| ---: | --- | ---: | ---: |"]
    full = {r["size"]: r["images_per_cpu_s"] for r in result["transform_only"] if r["decode"] == "full"}
    for r in result["transform_only"]:
        lines.append(f"| {r['size']} | {r['decode']} | {r['images_per_cpu_s']:.1f} | "
                     f"{r['images_per_cpu_s'] / full[r['size']]:.2f} |")
    gpu = result["gpu"]
    lines += ["", f"paper(): {gpu['forward_multiply_adds']:,} multiply-adds per image forward; a training step "
              f"~ 3 x forward = {gpu['training_flops_per_image'] / 1e9:.1f} GFLOP per image. An H100 SXM "
              "(published dense peaks) would consume, as an estimate:", "",
              "| H100 SXM | images/s at peak | at 40% utilisation | cores at the raw 299 rate |",
              "| --- | ---: | ---: | ---: |"]
    per = 1 / next(r["cpu_s_per_image"] for r in result["rows"] if r["what"] == "raw, one process")
    for name, rate in gpu["h100_images_per_s"].items():
        lines.append(f"| {name} | {rate['peak']:,.0f} | {rate['at_40pct']:,.0f} | {rate['at_40pct'] / per:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
