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
  - decoding: total CPU seconds (every process, RUSAGE_CHILDREN around mpiexec) of streamed `tiny`
    training on generated 500x375 JPEGs at 32 px, 1 process against 2 ranks, start-up subtracted
    (a run of few steps is subtracted from a run of many); with `--before DIR` also for the code in
    DIR (e.g. `git archive` of an older commit), where every rank decoded the whole global batch;
  - the gradient reduction per rank at N = 2, 4, 8 (oversubscribed ranks; `small`'s gradients,
    filled at random, through the same GradientBuckets the Trainer uses): payload bytes sent per
    step (counted by the communicator wrapper), the buffers the reduction holds, and the peak of
    traced allocations during a step (tracemalloc) and the process's peak RSS.
Projected (a model fed with the numbers above, not a measurement): images/s and efficiency of the
paper network on 8, 64 and 512 workers over 10, 25 and 100 Gbit/s links, in the form of Horovod's
scaling table, and which of compute, bandwidth or latency bounds each.

    python benchmarks/bench_distributed.py --only decode,traffic   # some parts; the rest kept from the json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
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
    x, labels = trainer.loader.batch(0, 0)  # on several ranks: this rank's rows
    times = []
    for _ in range(steps + 2):  # two warm-up steps (compilation, first touches)
        start = time.perf_counter()
        if dist is not None:
            dist.begin_step(False, len(labels))
        trainer._step(x, labels, 0.5)
        times.append(time.perf_counter() - start)
    out = {"preset": preset, "batch": batch, "threads": threads, "ranks": 1 if dist is None else dist.size,
           "step_s": statistics.median(times[2:]), "macs_per_image": model.network.macs(config.input_shape)}
    if dist is not None:
        stats = list(dist.step_times)[2:]
        out.update(wait_s=statistics.median(s["wait_s"] for s in stats),
                   backward_s=statistics.median(s["backward_s"] for s in stats),
                   buckets=dist.buckets.describe(), blocking_comm_s=_blocking_comm(dist),
                   reduction=dist.reduction)
        if not dist.is_root:
            return {}
    return out


def _blocking_comm(dist, repeats: int = 5) -> float:
    """Median time to reduce all the buckets one after the other, each waited for before the next."""
    buckets, times = dist.buckets, []
    for _ in range(repeats):
        dist.comm.barrier()
        start = time.perf_counter()
        for b in buckets.buckets:
            buckets._start(b)
            dist.comm.wait_until(buckets._progress, "a timed reduction")
            buckets._pending = []
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def worker_traffic(preset: str, reduction: str, bucket_mb: float, steps: int = 3) -> dict:
    """Bytes sent and memory held per rank for the gradient reduction of `preset` (float32)."""
    import tracemalloc

    from npxception import Xception, XceptionConfig
    from npxception.distributed.buckets import GradientBuckets
    from npxception.distributed.comm import Communicator

    comm = Communicator()
    model = Xception(getattr(XceptionConfig, preset)(num_classes=10), backend="numpy", seed=0)
    rng = np.random.default_rng(comm.rank)
    for leaf in model.leaves():
        leaf.grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in leaf.params.items()}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    buckets = GradientBuckets(comm, model, bucket_mb=bucket_mb, reduction=reduction)
    traced_after_setup = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    for _ in range(steps):  # as backward reports its blocks, last first
        for block in reversed(model.network.layers):
            buckets.ready(block)
        buckets.finish()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    gradient_bytes = sum(b.nbytes for b in buckets.buckets)
    out = {"ranks": comm.size, "reduction": reduction, "gradient_bytes": gradient_bytes,
           "sent_per_step": comm.traffic["gradients"]["sent"] / steps,
           "received_per_step": comm.traffic["gradients"]["received"] / steps,
           "held_bytes": buckets.comm_bytes(), "traced_setup_bytes": traced_after_setup,
           "traced_peak_bytes": peak, "rss_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
           "rss_before_kb": rss_before}
    return out if comm.is_root else {}


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


def cpu_seconds_of(command: list[str], env: dict, cwd: Path) -> float:
    """User + system CPU seconds of `command` and every process under it (they are all waited for).
    `cwd` outside the checkout: `python -m` puts it first on the path, before PYTHONPATH's tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


# The decoding benchmark's model: `tiny` at 16 px without middle blocks, whose step costs less than
# decoding its batch, so that the decoding's share of the CPU time shows.
DECODE_MODEL = ["--preset", "tiny", "--image-size", "16", "--middle-blocks", "0"]


def measure_decode_cpu(images: int, steps: tuple[int, int], batch: int, before: str | None,
                       repeats: int = 2) -> dict:
    """CPU seconds of the steps (many - few) of streamed training, 1 process and 2 ranks."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_data import write_folder

    root = Path(tempfile.mkdtemp(prefix="bench_distributed_"))
    write_folder(root / "photos", images)
    trees = {"now": str(ROOT)} | ({"before": str(Path(before).resolve())} if before else {})
    rows = []
    for tree, path in trees.items():
        env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
        for ranks in (1, 2):
            seconds = {}
            for count in steps:
                samples = []
                for repeat in range(repeats):
                    out = root / f"run-{tree}-{ranks}-{count}-{repeat}"
                    command = [sys.executable, "-m", "npxception", "train", "--dataset", "folder", "--data-dir",
                               str(root / "photos"), "--stream", "--workers", "0", *DECODE_MODEL,
                               "--backend", "numpy", "--threads", "1", "--batch-size", str(batch),
                               "--val-size", str(batch), "--max-steps", str(count), "--quiet", "--out", str(out)]
                    if ranks > 1:
                        command = [MPIEXEC, "-n", str(ranks), *command]
                    samples.append(cpu_seconds_of(command, env, root))
                seconds[count] = statistics.median(samples)
            few, many = steps
            rows.append({"code": tree, "ranks": ranks, "cpu_s_few": seconds[few], "cpu_s_many": seconds[many],
                         "cpu_s_per_step": (seconds[many] - seconds[few]) / (many - few)})
    for row in rows:
        one = next(r for r in rows if r["code"] == row["code"] and r["ranks"] == 1)
        row["vs_one_process"] = row["cpu_s_per_step"] / one["cpu_s_per_step"]
    return {"images": images, "steps": list(steps), "batch": batch, "model": " ".join(DECODE_MODEL),
            "image": "500x375 JPEG, streamed", "rows": rows,
            "loader_only": loader_cpu(root / "photos", batch, steps[1] - steps[0])}


def loader_cpu(folder: Path, batch: int, batches: int) -> dict:
    """CPU seconds (this process, decoding in it) of the streamed training loader alone over
    `batches` batches: the whole batch, and each of 2 ranks' shares one after the other."""
    from npxception.data.streaming import StreamingDataset, folder_index
    from npxception.distributed.rows import share_loader

    data = StreamingDataset(folder_index(folder, cache=False), 16, workers=0)
    options = {"shuffle": True, "augment": True, "seed": 0}
    out = {}
    for name, loader in (("whole batch", data.loader(batch, **options)),
                         ("rank 0 of 2", share_loader(data, batch, 0, 2, **options)),
                         ("rank 1 of 2", share_loader(data, batch, 1, 2, **options))):
        start = time.process_time()
        for index, _ in enumerate(loader.epoch(0)):
            if index + 1 == batches:
                break
        out[name] = time.process_time() - start
    return out


def measure_traffic(preset: str, bucket_mb: float, sizes=(2, 4, 8)) -> list[dict]:
    rows = []
    for ranks in sizes:
        for reduction in ("ring", "ordered"):
            rows.append(run_worker(["traffic", preset, reduction, str(bucket_mb)], ranks, 1))
    return rows


def fit_latency_bandwidth(rows: list[dict], op: str) -> dict:
    """t = latency + bytes / bandwidth: latency from messages up to 2 KiB (their median time), bandwidth
    from the least-squares slope over messages of 512 KiB and more (a plain fit over all sizes lets
    the large messages' noise swamp the latency)."""
    small = [r["seconds"] for r in rows if r["op"] == op and r["bytes"] <= 2048]
    large = np.array([(r["bytes"], r["seconds"]) for r in rows if r["op"] == op and r["bytes"] >= 2**19])
    slope = np.polyfit(large[:, 0], large[:, 1], 1)[0]
    return {"latency_us": float(np.median(small)) * 1e6, "bandwidth_gb_s": 1 / slope / 1e9}


def project(compute_s_per_image: float, grad_bytes: float, bucket_bytes: float, local_batch: int,
            overlap: float, ring_factor: float, latency_s: float = 30e-6) -> list[dict]:
    """Horovod-style table for the paper network: the ring reduction overlapping backward, fed
    with what was measured here.

    Per step and worker: compute = local_batch x compute_s_per_image (measured here, scaled by
    multiply-adds), of which backward is 2/3. The ring on N workers over a link of L bit/s sends,
    per bucket of S bytes, 2 (N - 1) messages (each `latency_s`, 30 us for a datacentre link: a
    loopback cannot measure one) and ring_factor(N) x S bytes at 0.9 L, where ring_factor is the
    bytes sent per rank over the gradient size as counted at N = 2, 4, 8 (2 (N - 1) / N; at 64
    and 512, that formula). Of the reduction, the measured overlap fraction hides behind backward
    (at most backward's length) and the rest is exposed, but never less than the last bucket.
    Efficiency = compute / step. Bound: compute when the exposed communication is under 10% of the
    step, else bandwidth or latency, whichever term of the reduction is larger.
    """
    rows = []
    compute = local_batch * compute_s_per_image
    backward = compute * 2 / 3
    buckets = max(1, int(np.ceil(grad_bytes / bucket_bytes)))
    for gbit in (10, 25, 100):
        bandwidth = 0.9 * gbit * 1e9 / 8
        for n in (8, 64, 512):
            factor = ring_factor(n)
            latency = buckets * 2 * (n - 1) * latency_s
            transfer = factor * grad_bytes / bandwidth
            total = latency + transfer
            exposed = max(total / buckets, total - min(overlap * total, backward))
            step = compute + exposed
            bound = ("compute" if exposed < 0.1 * step else "bandwidth" if transfer >= latency else "latency")
            rows.append({"link_gbit_s": gbit, "workers": n, "images_per_s": n * local_batch / step,
                         "efficiency": compute / step, "allreduce_s": total, "exposed_s": exposed,
                         "latency_s": latency, "transfer_s": transfer, "bound": bound})
    return rows


def ring_factor_from(traffic: list[dict]):
    """Bytes sent per rank / gradient bytes, as measured for the ring, else 2 (N - 1) / N."""
    measured = {r["ranks"]: r["sent_per_step"] / r["gradient_bytes"] for r in traffic if r["reduction"] == "ring"}
    return lambda n: measured.get(n, 2 * (n - 1) / n)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--only", help="comma-separated parts to measure (train, loopback, decode, traffic); "
                                  "the others are kept from the last distributed_cpu.json")
    p.add_argument("--before", help="a source tree of older code to measure the decoding CPU time of too")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        if kind == "train":
            out = worker_train(rest[0], int(rest[1]), int(rest[2]), int(rest[3]), float(rest[4]))
        elif kind == "traffic":
            out = worker_traffic(rest[0], rest[1], float(rest[2]))
        else:
            out = worker_allreduce(float(rest[0]))
        if out:  # rank 0 alone: lines of several ranks can merge in the launcher's output
            print(json.dumps(out), flush=True)
        return
    parts = set(args.only.split(",")) if args.only else {"train", "loopback", "decode", "traffic"}
    saved_path = RESULTS / "distributed_cpu.json"
    result = json.loads(saved_path.read_text()) if args.only and saved_path.exists() else {}
    preset, batch, steps = ("tiny", 16, 2) if args.quick else ("small", 64, args.steps)
    bucket_mb = 1.0
    if "train" in parts:
        result.update(measure_training(preset, batch, steps, bucket_mb))
    if "loopback" in parts:
        comm = run_worker(["allreduce", "0.5" if args.quick else "32"], 2, 1)
        result["loopback"] = {op: fit_latency_bandwidth(comm["rows"], op) for op in ("allreduce", "ordered")}
        result["loopback_rows"] = comm["rows"]
    if "decode" in parts:
        result["decode_cpu"] = measure_decode_cpu(96 if args.quick else 1200, (1, 2) if args.quick else (2, 34),
                                                  32, args.before, repeats=1 if args.quick else 2)
    if "traffic" in parts:
        result["traffic"] = measure_traffic("tiny" if args.quick else "small", bucket_mb,
                                            (2, 4) if args.quick else (2, 4, 8))
    if "step_s" in result:
        result["projection"] = projection(result)
    load = os.getloadavg()
    result["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": load,
                         "note": "shared machine, loaded by other work during the run" if load[0] > 2.5 else ""}
    print(format_markdown(result))
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        saved_path.write_text(json.dumps(result, indent=1) + "\n")
        (RESULTS / "distributed_cpu.md").write_text(format_markdown(result) + "\n")


def measure_training(preset: str, batch: int, steps: int, bucket_mb: float) -> dict:
    """images/s of 1 x 1, 1 x 2 and 2 x 1 (ranks x threads), the wait and the overlap on 2 ranks."""
    train = lambda ranks, threads: run_worker(["train", preset, str(batch), str(steps), str(threads),  # noqa: E731
                                               str(bucket_mb)], ranks, threads)
    one_1, one_2, two_1 = train(1, 1), train(1, 2), train(2, 1)
    ips = {k: batch / r["step_s"] for k, r in (("1x1", one_1), ("1x2", one_2), ("2x1", two_1))}
    overlap = max(0.0, 1 - two_1["wait_s"] / two_1["blocking_comm_s"]) if two_1["blocking_comm_s"] > 0 else 0.0
    return {"preset": preset, "global_batch": batch, "bucket_mb": bucket_mb, "images_per_s": ips,
            "step_s": {"1x1": one_1["step_s"], "1x2": one_2["step_s"], "2x1": two_1["step_s"]},
            "macs_per_image": one_1["macs_per_image"], "reduction": two_1["reduction"],
            "efficiency_2x1_vs_1x2": ips["2x1"] / ips["1x2"],
            "scaling_efficiency_2_ranks": ips["2x1"] / (2 * ips["1x1"]),
            "wait_per_step_ms": 1e3 * two_1["wait_s"], "backward_ms": 1e3 * two_1["backward_s"],
            "blocking_comm_per_step_ms": 1e3 * two_1["blocking_comm_s"], "overlap": overlap,
            "buckets": two_1["buckets"]}


def projection(result: dict) -> dict:
    """The paper network on 8/64/512 workers from the measured step time, overlap and bytes per step."""
    from npxception import Xception, XceptionConfig

    paper = XceptionConfig.paper()
    paper_model = Xception(paper, backend="numpy")
    paper_macs = paper_model.network.macs(paper.input_shape)
    grad_bytes = 4 * paper_model.num_params()["trainable"]
    per_image = result["step_s"]["1x1"] / result["global_batch"] * paper_macs / result["macs_per_image"]
    factor = ring_factor_from(result.get("traffic", []))
    overlap = result["overlap"]
    return {"model": " ".join(project.__doc__.split("\n\n", 1)[1].split()),
            "compute_s_per_image_cpu_1_thread": per_image, "overlap": overlap,
            "ring_factor": {str(n): factor(n) for n in (2, 4, 8, 64, 512)},
            "paper_gradient_mb": grad_bytes / 2**20, "bucket_mb": 25, "local_batch": 32,
            "cpu_1_thread": project(per_image, grad_bytes, 25 * 2**20, 32, overlap, factor),
            "assumed_gpu_200_img_s": project(1 / 200, grad_bytes, 25 * 2**20, 32, overlap, factor)}


def format_markdown(r: dict) -> str:
    m = r["machine"]
    lines = ["# Data-parallel training (cpu backend)", "",
             f"{m['platform']}, {m['cpus']} CPUs, load average {m['load_average'][0]:.1f} at the end. {m['note']}", ""]
    if "images_per_s" in r:
        lines += _training_lines(r)
    if "decode_cpu" in r:
        lines += _decode_lines(r["decode_cpu"])
    if "traffic" in r:
        lines += _traffic_lines(r["traffic"])
    if "projection" in r:
        lines += _projection_lines(r["projection"])
    return "\n".join(lines)


def _training_lines(r: dict) -> list[str]:
    ips = r["images_per_s"]
    lines = [f"## {r['preset']} at global batch {r['global_batch']}, reduction {r.get('reduction', 'ordered')}", "",
             "| configuration | images/s |", "|---|---:|",
             f"| 1 process x 1 thread | {ips['1x1']:.1f} |", f"| 1 process x 2 threads | {ips['1x2']:.1f} |",
             f"| 2 ranks x 1 thread (mpiexec -n 2) | {ips['2x1']:.1f} |", "",
             f"Efficiency of 2 ranks x 1 thread against 1 process x 2 threads: {r['efficiency_2x1_vs_1x2']:.2f}; "
             f"scaling efficiency against 2 x (1 process x 1 thread): {r['scaling_efficiency_2_ranks']:.2f}.", "",
             f"Per step on 2 ranks: backward {r['backward_ms']:.1f} ms, wait for the buckets "
             f"{r['wait_per_step_ms']:.2f} ms; the same {len(r['buckets'])} buckets reduced one after the other take "
             f"{r['blocking_comm_per_step_ms']:.2f} ms, so the overlap achieved is {100 * r['overlap']:.0f}% (the wait "
             "also holds any lag of the other rank).", ""]
    if "loopback" in r:
        lines += ["Loopback (2 ranks, MPICH shared memory), t = latency + bytes / bandwidth:", ""]
        for op, fit in r["loopback"].items():
            lines.append(f"- {op}: latency {fit['latency_us']:.1f} us, bandwidth {fit['bandwidth_gb_s']:.2f} GB/s")
        lines.append("")
    return lines


def _decode_lines(d: dict) -> list[str]:
    few, many = d["steps"]
    lines = [f"## Decoding: total CPU seconds of streamed training ({d['image']}, `{d.get('model', 'tiny')}`, "
             f"global batch {d['batch']})", "",
             f"All processes (RUSAGE_CHILDREN around mpiexec); per step = (CPU of {many} steps - CPU of {few}) / "
             f"{many - few}, which takes out the start-up; median of the repeats.", "",
             "| code | processes | CPU s, few steps | CPU s, many steps | CPU s per step | vs 1 process |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in d["rows"]:
        name = {"now": "each rank decodes its rows", "before": "every rank decodes the whole batch"}[row["code"]]
        lines.append(f"| {name} | {row['ranks']} | {row['cpu_s_few']:.1f} | {row['cpu_s_many']:.1f} | "
                     f"{row['cpu_s_per_step']:.3f} | {row['vs_one_process']:.2f}x |")
    if "loader_only" in d:
        lo = d["loader_only"]
        n = d["steps"][1] - d["steps"][0]
        lines += ["", f"The loader alone ({n} batches, decoding in one process): whole batch "
                  f"{lo['whole batch']:.2f} CPU s; the two ranks' shares {lo['rank 0 of 2']:.2f} + "
                  f"{lo['rank 1 of 2']:.2f} = "
                  f"{lo['rank 0 of 2'] + lo['rank 1 of 2']:.2f} CPU s."]
    return lines + [""]


def _traffic_lines(rows: list[dict]) -> list[str]:
    grad = rows[0]["gradient_bytes"] / 2**20
    lines = [f"## Gradient reduction per rank ({grad:.2f} MB of float32 gradients, 1 MB buckets)", "",
             "Bytes sent per step as counted by the communicator wrapper (point-to-point messages exactly; for the "
             "allgather, what every rank must receive, which on average each also sends). Held: the reduction's "
             "buffers. Traced peak: the largest traced allocation total during the steps (tracemalloc, the "
             "buffers included). RSS: the rank's peak resident memory (Python, NumPy and the model included).", "",
             "| ranks | reduction | sent per step (MB) | x gradient | held (MB) | traced peak (MB) | peak RSS (MB) |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['ranks']} | {r['reduction']} | {r['sent_per_step'] / 2**20:.2f} | "
                     f"{r['sent_per_step'] / r['gradient_bytes']:.2f} | {r['held_bytes'] / 2**20:.2f} | "
                     f"{r['traced_peak_bytes'] / 2**20:.2f} | {r['rss_peak_kb'] / 1024:.0f} |")
    return lines + [""]


def _projection_lines(pr: dict) -> list[str]:
    lines = ["## Projection for the paper network (a model fed with the measurements above)", "", pr["model"], "",
             f"Gradients {pr['paper_gradient_mb']:.0f} MB in {pr['bucket_mb']} MB buckets, {pr['local_batch']} "
             f"images per worker; compute per image {pr['compute_s_per_image_cpu_1_thread']:.2f} s (the measured "
             f"1 x 1 step scaled by multiply-adds); overlap {100 * pr['overlap']:.0f}% (measured on 2 ranks); bytes "
             "sent per rank / gradient: " + ", ".join(f"{v:.3f} at {n}" for n, v in pr["ring_factor"].items()) + ".",
             ""]
    for name, title in (("cpu_1_thread", "workers like one thread of this machine"),
                        ("assumed_gpu_200_img_s", "workers at an assumed 200 images/s (a GPU's order of magnitude)")):
        lines += [f"{title}:", "", "| link | 8 workers | 64 workers | 512 workers |", "|---|---:|---:|---:|"]
        for gbit in (10, 25, 100):
            cells = [f"{row['images_per_s']:,.1f} img/s ({100 * row['efficiency']:.0f}%, {row['bound']})"
                     for row in pr[name] if row["link_gbit_s"] == gbit]
            lines.append(f"| {gbit} Gbit/s | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


if __name__ == "__main__":
    main()
