"""Memory of a streamed training run as the dataset grows: peak resident memory of the trainer and
of its data workers, for folders of generated 500x375 JPEGs of different sizes.

    python benchmarks/stream_memory.py                            # 2,000 and 20,000 images, small() at 32
    python benchmarks/stream_memory.py --counts 20000 --preset paper --max-steps 3 --batch-size 8

Each run is `npxception train --dataset folder --stream ...` in a child process; this script
samples /proc every 0.2 s for the trainer and every process below it: the largest resident set
(RSS) of the trainer, of any one worker, and the largest total proportional set size (PSS, which
splits shared pages - the shared-memory batches, copy-on-write pages of forked workers - among
the processes that share them, so the sum does not count them twice). The folders are generated
once under --root and reused; they are not part of the repository.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_data import write_folder  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _write_part(args) -> None:
    root, start, stop = args
    write_folder(Path(root), stop, seed=0, first=start)


def make_folder(root: Path, count: int, processes: int = 2) -> Path:
    parts = [(str(root), start, min(start + 500, count)) for start in range(0, count, 500)]
    with mp.get_context("fork").Pool(processes) as pool:
        pool.map(_write_part, parts)
    return root


def _status_kb(pid: int, field: str, path: str = "status") -> int:
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def measure(argv: list[str]) -> dict:
    """Run `argv`, sampling memory; returns peaks in MB and the run's first output line."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak_trainer = peak_worker = peak_pss = 0
    samples = []
    start = time.monotonic()
    while proc.poll() is None:
        pids = _tree(proc.pid)
        trainer = _status_kb(proc.pid, "VmRSS")
        workers = [_status_kb(p, "VmRSS") for p in pids[1:]]
        pss = sum(_status_kb(p, "Pss", "smaps_rollup") for p in pids)
        peak_trainer, peak_pss = max(peak_trainer, trainer), max(peak_pss, pss)
        peak_worker = max([peak_worker, *workers])
        samples.append((round(time.monotonic() - start, 1), trainer // 1024, pss // 1024))
        time.sleep(0.2)
    output = proc.stdout.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{output[-2000:]}")
    lines = [line for line in output.splitlines() if line.strip()]
    return {"trainer_peak_rss_mb": peak_trainer / 1024, "worker_peak_rss_mb": peak_worker / 1024,
            "total_peak_pss_mb": peak_pss / 1024, "seconds": time.monotonic() - start, "first_line": lines[0],
            "last_line": lines[-1], "samples_s_rss_pss_mb": samples[::max(1, len(samples) // 40)]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--root", default="/tmp/npxception-stream-data", help="where the folders are generated")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--out", default=str(RESULTS / "stream_memory.json"))
    args = parser.parse_args()
    runs = []
    for count in args.counts:
        folder = make_folder(Path(args.root) / f"images-{count}", count)
        run_dir = Path(args.root) / f"run-{args.preset}-{count}-{time.strftime('%H%M%S')}"
        argv = [sys.executable, "-m", "npxception", "train", "--dataset", "folder", "--data-dir", str(folder),
                "--stream", "--preset", args.preset, "--epochs", str(args.epochs), "--batch-size",
                str(args.batch_size), "--quiet", "--out", str(run_dir)]
        argv += ["--max-steps", str(args.max_steps)] if args.max_steps else []
        argv += ["--workers", str(args.workers)] if args.workers is not None else []
        result = {"images": count, "preset": args.preset, "batch_size": args.batch_size, **measure(argv)}
        print(json.dumps({k: v for k, v in result.items() if k != "samples_s_rss_pss_mb"}), flush=True)
        runs.append(result)
    Path(args.out).write_text(json.dumps(runs, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
