"""Data pipeline benchmark: decode + augment throughput of the streaming loader, against what a GPU needs.

    python benchmarks/bench_data.py           # writes benchmarks/results/data_cpu.{json,md}
    python benchmarks/bench_data.py --quick   # smoke run: a few images, nothing written

Images: JPEGs of ImageNet's typical size (500x375, quality 90), drawn by this script (smooth
colour fields, shapes and texture at two scales: about 100 KB each, near ImageNet's mean of ~110 KB).

1. Per worker: the training transform (Inception crop to 299, flip) in one process, with JPEGs
   decoded at full size and at reduced DCT size, and the same at 32 (small()'s input) where the
   reduced decode can use libjpeg's 1/8 scale; images per CPU-second, median of repeated passes.
2. The whole loader (worker processes, shared memory, the parent's copy out of it) at 299 with
   1 and 2 workers; images per wall-clock second over an epoch after the pool has started.
3. What one GPU step of paper() needs: forward multiply-adds from the model's layer table, a
   training step counted as 3 x forward (the backward pass costs about twice the forward), 2
   FLOPs per multiply-add, against an H100 SXM's published dense peaks (NVIDIA's H100 datasheet:
   67 TFLOPS FP32, 494.7 TFLOPS TF32 tensor core without sparsity) at 100% and at an assumed 40%
   utilisation. These are estimates from published numbers, not measurements.
"""

from __future__ import annotations

import argparse
import io
import json
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


def per_worker(images: list[bytes], size: int, reduced: bool, repeats: int) -> float:
    """Images per CPU-second of the training transform in this process: what one worker on one
    core of its own delivers. CPU time rather than wall time, so that other work on a shared
    machine does not count against it."""
    from npxception.data.streaming import Transform, sample_rng

    transform = Transform(size, train=True, reduced_decode=reduced)
    times = []
    for r in range(repeats):
        start = time.process_time()
        for i, data in enumerate(images):
            transform(data, sample_rng(0, r, i))
        times.append(time.process_time() - start)
    return len(images) / statistics.median(times)


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished (joined) children, the workers."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def loader_rate(root: Path, size: int, workers: int, batch: int) -> tuple[float, float]:
    """(images per wall-clock second, images per CPU-second of parent and workers together) of an
    epoch of the streaming loader, pool start-up and worker shutdown included."""
    from npxception.data.streaming import StreamingDataset, folder_index

    data = StreamingDataset(folder_index(root), size, workers=workers)
    wall, cpu, count = time.perf_counter(), _cpu_seconds(), 0
    for x, _ in data.loader(batch, shuffle=True, augment=True).epoch(0):
        count += len(x)
    return count / (time.perf_counter() - wall), count / (_cpu_seconds() - cpu)


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
    args = parser.parse_args()
    count, repeats = (24, 1) if args.quick else (args.images, 3)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.folder) if args.folder else write_folder(Path(tmp) / "images", count)
        files = sorted(root.glob("*/*.jpg"))
        count = len(files)
        images = [f.read_bytes() for f in files[:min(len(files), 100)]]
        rows = []
        for size in (299, 32):
            for reduced in (False, True):
                rate = per_worker(images, size, reduced, repeats)
                rows.append({"size": size, "decode": "reduced" if reduced else "full", "workers": "in-process",
                             "images_per_s": rate})
                print(f"{size:>4} {rows[-1]['decode']:>8} decode, one process: {rate:8.1f} images/s", flush=True)
        for workers in (1, 2):
            wall, cpu = loader_rate(root, 299, workers, batch=8 if args.quick else 32)
            rows.append({"size": 299, "decode": "reduced", "workers": workers, "images_per_s": cpu,
                         "images_per_wall_s": wall})
            print(f" 299  reduced decode, loader with {workers} worker(s): {cpu:8.1f} images per CPU-second, "
                  f"{wall:.1f} per wall-clock second", flush=True)
        mean_kb = statistics.mean(len(b) for b in images) / 1024
    need = gpu_need()
    result = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
              "images": count, "mean_jpeg_kb": mean_kb, "rows": rows, "gpu": need,
              "note": "shared 2-core machine, other work running (load average 1-3 at the time, after hours "
                      "near 20); rates are indicative"}
    if args.quick:
        return 0
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "data_cpu.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "data_cpu.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def markdown(result: dict) -> str:
    full = {r["size"]: r["images_per_s"] for r in result["rows"] if r["decode"] == "full"}
    lines = [f"Decode + Inception crop + flip of {result['images']} generated 500x375 quality-90 JPEGs "
             f"(mean {result['mean_jpeg_kb']:.0f} KB); {result['note']}. Images per CPU-second: what one "
             "core delivers; the loader rows add the parent's copy and the workers' start-up, and give "
             "the wall-clock rate, which on this loaded machine says little about scaling.", "",
             "| output | JPEG decode | processes | images per CPU-s | vs full decode | images per wall-s |",
             "| ---: | --- | --- | ---: | ---: | ---: |"]
    for r in result["rows"]:
        wall = f"{r['images_per_wall_s']:.1f}" if "images_per_wall_s" in r else ""
        lines.append(f"| {r['size']} | {r['decode']} | {r['workers']} | {r['images_per_s']:.1f} | "
                     f"{r['images_per_s'] / full[r['size']]:.2f} | {wall} |")
    gpu = result["gpu"]
    lines += ["", f"paper(): {gpu['forward_multiply_adds']:,} multiply-adds per image forward; a training step "
              f"~ 3 x forward = {gpu['training_flops_per_image'] / 1e9:.1f} GFLOP per image. An H100 SXM "
              "(published dense peaks) would consume, as an estimate:", "",
              "| H100 SXM | images/s at peak | at 40% utilisation | cores at the 299 in-process rate |",
              "| --- | ---: | ---: | ---: |"]
    per = next(r["images_per_s"] for r in result["rows"] if r["size"] == 299 and r["decode"] == "reduced")
    for name, rate in gpu["h100_images_per_s"].items():
        lines.append(f"| {name} | {rate['peak']:,.0f} | {rate['at_40pct']:,.0f} | {rate['at_40pct'] / per:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
