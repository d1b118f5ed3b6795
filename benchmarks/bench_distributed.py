"""Data-parallel benchmark: one process x 2 threads against 2 MPI ranks x 1 thread, on `small`.

    python benchmarks/bench_distributed.py            # writes benchmarks/results/distributed_cpu.{json,md}
    python benchmarks/bench_distributed.py --quick    # smoke run: tiny(), few steps, nothing written

Measured (each configuration in its own processes, the cpu backend, the Trainer's own step):
  - images/s from the median step time of `small` at global batch 64, for 1 process x 1 thread,
    1 process x 2 threads and 2 ranks x 1 thread (mpiexec -n 2), and the scaling efficiencies;
  - per step on 2 ranks: the time spent in the one wait for the gradient buckets, and the overlap
    achieved: 1 - wait / (the same buckets reduced with blocking calls, timed separately);
  - the reduction cost on loopback, t(n bytes) = latency + n / bandwidth (messages of 8 B to 32 MB),
    for MPI_Allreduce and for the rank-order Allgather + sum.
Projected (a model, not a measurement): images/s and efficiency of the paper network on 8, 64 and
512 workers over 10, 25 and 100 Gbit/s links, in the form of Horovod's scaling table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")


# ---------------------------------------------------------------------------- workers (one per process)

def worker_train(preset: str, batch: int, steps: int, threads: int, bucket_mb: float) -> dict:
    from npxception import Xception, XceptionConfig, distributed
    from npxception.data import make_shapes
    from npxception.threads import set_num_threads
    from npxception.train import TrainConfig, Trainer

    set_num_threads(threads)
    dist = distributed.init(sync_bn=False, bucket_mb=bucket_mb)
    config = getattr(XceptionConfig, preset)(num_classes=10)
    model = Xception(config, backend="cpu", seed=0)
    data = make_shapes(batch * 2, config.input_shape[0], seed=0)
    trainer = Trainer(model, data, data, TrainConfig(epochs=1, batch_size=batch, optimizer="nesterov", lr=0.01),
                      f"/tmp/bench_distributed_{os.getpid()}", quiet=True, distributed=dist)
    if dist is not None:
        dist.start(trainer)
    x, labels = trainer.loader.batch(0, 0)
    times = []
    for _ in range(steps + 2):  # two warm-up steps (compilation, first touches)
        start = time.perf_counter()
        trainer._step(x, labels, 0.5)
        times.append(time.perf_counter() - start)
    out = {"preset": preset, "batch": batch, "threads": threads, "ranks": 1 if dist is None else dist.size,
           "step_s": statistics.median(times[2:]), "macs_per_image": model.network.macs(config.input_shape)}
    if dist is not None:
        stats = dist.step_times[2:]
        out.update(wait_s=statistics.median(s["wait_s"] for s in stats),
                   backward_s=statistics.median(s["backward_s"] for s in stats),
                   buckets=dist.buckets.describe(), blocking_comm_s=_blocking_comm(dist))
        if not dist.is_root:
            return {}
    return out


def _blocking_comm(dist, repeats: int = 5) -> float:
    """Median time to reduce all the buckets with blocking calls, one after the other."""
    comm, times = dist.comm, []
    for _ in range(repeats):
        comm.barrier()
        start = time.perf_counter()
        for b in dist.buckets.buckets:
            comm.comm.Allgather(b.send, b.recv)
            np.sum(b.recv, axis=0)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def worker_allreduce(max_mb: float) -> dict:
    from npxception.distributed.comm import Communicator, rank_order_sum

    comm = Communicator()
    rows = []
    sizes = [2**k for k in range(3, int(np.log2(max_mb * 2**20)) + 1, 2)]
    for nbytes in sizes:
        send = np.ones(nbytes // 4, np.float32)
        recv, gathered = np.empty_like(send), np.empty((comm.size, send.size), np.float32)
        repeats = max(3, min(200, int(2**22 // nbytes)))
        for name in ("allreduce", "ordered"):
            for i in range(repeats + 1):
                if i == 1:  # the first call is a warm-up
                    comm.barrier()
                    start = time.perf_counter()
                if name == "allreduce":
                    comm.comm.Allreduce(send, recv, op=comm.MPI.SUM)
                else:
                    comm.comm.Allgather(send, gathered)
                    rank_order_sum(gathered)
            rows.append({"op": name, "bytes": nbytes, "seconds": (time.perf_counter() - start) / repeats})
    return {"ranks": comm.size, "rows": rows} if comm.is_root else {}


# ---------------------------------------------------------------------------- the parent

def run_worker(args: list[str], ranks: int, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--worker", *args]
    if ranks > 1:
        command = [MPIEXEC, "-n", str(ranks), *command]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{") and line != "{}"]
    return json.loads(lines[-1])


def fit_latency_bandwidth(rows: list[dict], op: str) -> dict:
    """t = latency + bytes / bandwidth: latency from messages up to 2 KiB (their median time), bandwidth
    from the least-squares slope over messages of 512 KiB and more (a plain fit over all sizes lets
    the large messages' noise swamp the latency)."""
    small = [r["seconds"] for r in rows if r["op"] == op and r["bytes"] <= 2048]
    large = np.array([(r["bytes"], r["seconds"]) for r in rows if r["op"] == op and r["bytes"] >= 2**19])
    slope = np.polyfit(large[:, 0], large[:, 1], 1)[0]
    return {"latency_us": float(np.median(small)) * 1e6, "bandwidth_gb_s": 1 / slope / 1e9}


def project(compute_s_per_image: float, grad_bytes: float, bucket_bytes: float, local_batch: int) -> list[dict]:
    """Horovod-style table for the paper network: a model of ring allreduce overlapping backward.

    Per step and worker: compute = local_batch x compute_s_per_image (measured on this machine,
    scaled by multiply-adds), of which backward is 2/3. Ring allreduce of S bytes on N workers
    over a link of L bit/s: 2 (N - 1) messages of latency 30 us plus 2 (N - 1) / N x S / (0.9 L).
    The buckets' reductions overlap backward; what is exposed is max(the last bucket, all buckets
    minus backward). Efficiency = compute / step.
    """
    rows = []
    compute = local_batch * compute_s_per_image
    backward = compute * 2 / 3
    buckets = max(1, int(np.ceil(grad_bytes / bucket_bytes)))
    for gbit in (10, 25, 100):
        bandwidth = 0.9 * gbit * 1e9 / 8
        for n in (8, 64, 512):
            one = 2 * (n - 1) * 30e-6 + 2 * (n - 1) / n * (grad_bytes / buckets) / bandwidth  # one bucket
            total = buckets * one
            exposed = max(one, total - backward)
            step = compute + exposed
            rows.append({"link_gbit_s": gbit, "workers": n, "images_per_s": n * local_batch / step,
                         "efficiency": compute / step, "allreduce_s": total})
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        out = worker_train(rest[0], int(rest[1]), int(rest[2]), int(rest[3]), float(rest[4])) if kind == "train" \
            else worker_allreduce(float(rest[0]))
        print(json.dumps(out), flush=True)
        return
    preset, batch, steps = ("tiny", 16, 2) if args.quick else ("small", 64, args.steps)
    bucket_mb = 1.0
    train = lambda ranks, threads: run_worker(["train", preset, str(batch), str(steps), str(threads),  # noqa: E731
                                               str(bucket_mb)], ranks, threads)
    one_1, one_2, two_1 = train(1, 1), train(1, 2), train(2, 1)
    comm = run_worker(["allreduce", "0.5" if args.quick else "32"], 2, 1)
    ips = {k: batch / r["step_s"] for k, r in (("1x1", one_1), ("1x2", one_2), ("2x1", two_1))}
    overlap = max(0.0, 1 - two_1["wait_s"] / two_1["blocking_comm_s"]) if two_1["blocking_comm_s"] > 0 else 0.0
    loopback = {op: fit_latency_bandwidth(comm["rows"], op) for op in ("allreduce", "ordered")}

    from npxception import Xception, XceptionConfig

    paper = XceptionConfig.paper()
    paper_model = Xception(paper, backend="numpy")
    paper_macs = paper_model.network.macs(paper.input_shape)
    grad_bytes = 4 * paper_model.num_params()["trainable"]
    per_image = one_1["step_s"] / batch * paper_macs / one_1["macs_per_image"]
    load = os.getloadavg()
    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": load,
                    "note": "shared machine, loaded by other work during the run" if load[0] > 2.5 else ""},
        "preset": preset, "global_batch": batch, "bucket_mb": bucket_mb,
        "images_per_s": ips,
        "efficiency_2x1_vs_1x2": ips["2x1"] / ips["1x2"],
        "scaling_efficiency_2_ranks": ips["2x1"] / (2 * ips["1x1"]),
        "wait_per_step_ms": 1e3 * two_1["wait_s"], "backward_ms": 1e3 * two_1["backward_s"],
        "blocking_comm_per_step_ms": 1e3 * two_1["blocking_comm_s"], "overlap": overlap,
        "buckets": two_1["buckets"], "loopback": loopback, "loopback_rows": comm["rows"],
        "projection": {
            "model": " ".join(project.__doc__.split("\n\n", 1)[1].split()),
            "compute_s_per_image_cpu_1_thread": per_image,
            "paper_gradient_mb": grad_bytes / 2**20, "bucket_mb": 25, "local_batch": 32,
            "cpu_1_thread": project(per_image, grad_bytes, 25 * 2**20, 32),
            "assumed_gpu_200_img_s": project(1 / 200, grad_bytes, 25 * 2**20, 32)},
    }
    print(format_markdown(result))
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "distributed_cpu.json").write_text(json.dumps(result, indent=1) + "\n")
        (RESULTS / "distributed_cpu.md").write_text(format_markdown(result) + "\n")


def format_markdown(r: dict) -> str:
    ips, m = r["images_per_s"], r["machine"]
    lines = [f"# Data-parallel training, {r['preset']} at global batch {r['global_batch']} (cpu backend)", "",
             f"{m['platform']}, {m['cpus']} CPUs, load average {m['load_average'][0]:.1f} at the end. {m['note']}",
             "", "| configuration | images/s |", "|---|---:|",
             f"| 1 process x 1 thread | {ips['1x1']:.1f} |", f"| 1 process x 2 threads | {ips['1x2']:.1f} |",
             f"| 2 ranks x 1 thread (mpiexec -n 2) | {ips['2x1']:.1f} |", "",
             f"Efficiency of 2 ranks x 1 thread against 1 process x 2 threads: {r['efficiency_2x1_vs_1x2']:.2f}; "
             f"scaling efficiency against 2 x (1 process x 1 thread): {r['scaling_efficiency_2_ranks']:.2f}.", "",
             f"Per step on 2 ranks: backward {r['backward_ms']:.1f} ms, wait for the buckets "
             f"{r['wait_per_step_ms']:.2f} ms; the same {len(r['buckets'])} buckets reduced with blocking calls take "
             f"{r['blocking_comm_per_step_ms']:.2f} ms, so the overlap achieved is {100 * r['overlap']:.0f}% (the wait "
             "also holds any lag of the other rank).", "",
             "Loopback (2 ranks, MPICH shared memory), t = latency + bytes / bandwidth:", ""]
    for op, fit in r["loopback"].items():
        lines.append(f"- {op}: latency {fit['latency_us']:.1f} us, bandwidth {fit['bandwidth_gb_s']:.2f} GB/s")
    pr = r["projection"]
    lines += ["", "## Projection for the paper network (a model, not a measurement)", "", pr["model"], "",
              f"Gradients {pr['paper_gradient_mb']:.0f} MB in {pr['bucket_mb']} MB buckets, {pr['local_batch']} "
              f"images per worker; compute per image {pr['compute_s_per_image_cpu_1_thread']:.2f} s "
              "(measured small step scaled by multiply-adds, one thread of this machine).", ""]
    for name, title in (("cpu_1_thread", "workers like one thread of this machine"),
                        ("assumed_gpu_200_img_s", "workers at an assumed 200 images/s (a GPU's order of magnitude)")):
        lines += [f"{title}:", "", "| link | 8 workers | 64 workers | 512 workers |", "|---|---:|---:|---:|"]
        for gbit in (10, 25, 100):
            cells = [f"{row['images_per_s']:,.1f} img/s ({100 * row['efficiency']:.0f}%)" for row in pr[name]
                     if row["link_gbit_s"] == gbit]
            lines.append(f"| {gbit} Gbit/s | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
