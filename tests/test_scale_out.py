"""Scale-out: each rank loads only its rows, the ring reduction, two hosts over TCP, hung ranks.

The pure pieces (a loader's share of each batch, the ring's rounds) are tested in-process; the rest
runs under `mpiexec` on `tiny` with the numpy backend. Every job runs in a session of its own and is
killed as a group when it overruns; the two-host test builds two network namespaces joined by a
veth pair (root and `ip` needed; .ci/run installs iproute2) and always removes them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from npxception.data import make_shapes
from npxception.data.loader import Loader, batch_share, epoch_order
from npxception.distributed.ring import RingAllreduce, chunk_bounds
from npxception.train import load_checkpoint
from tests.mpi_jobs import bounded, rank_pid

ROOT = Path(__file__).resolve().parent.parent
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None  # found, not imported
needs_mpi = pytest.mark.skipif(MPIEXEC is None or not HAVE_MPI4PY, reason="needs mpi4py and mpiexec (the mpi extra)")
DRIVER = str(ROOT / "tests" / "mpi_driver.py")
NPX = [sys.executable, "-m", "npxception"]
TINY = ["train", "--preset", "tiny", "--backend", "numpy", "--image-size", "16", "--train-size", "48",
        "--val-size", "30", "--batch-size", "16", "--quiet"]
TIMEOUT = 60


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "MV2_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _bounded(command: list[str], timeout: float = TIMEOUT, **env: str) -> subprocess.CompletedProcess:
    return bounded(command, timeout, {**_env(), **env}, ROOT)


def _driver(mode: str, out: Path, ranks: int, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, DRIVER, mode, str(out), *extra]
    return _bounded([MPIEXEC, "-n", str(ranks), *command] if ranks else command)


def _ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def _close(a: dict, b: dict, groups=("model", "optimizer", "ema"), rel: float = 1e-12) -> None:
    """Every array of `groups` agrees to `rel` of the group's largest magnitude: a value near zero
    carries the rounding of the larger ones it came from (a batch-norm shift of 0.012 after two
    steps differs by 2e-14 between 4 + 3 rows and 7, in weights of magnitude up to 0.5)."""
    for group in groups:
        scale = max(np.abs(value).max() for value in a[group].values())
        for key in a[group]:
            assert np.abs(a[group][key] - b[group][key]).max() <= rel * scale, f"{group}/{key}"


# --------------------------------------------------------------------------- in-process pieces

@pytest.mark.parametrize("ranks", [2, 3, 4])
def test_each_ranks_loader_gives_its_rows_of_the_one_process_batch_bitwise(ranks):
    """Shuffled and augmented, the uneven last batch included (60 = 3 x 16 + 12)."""
    data = make_shapes(60, 16, seed=0)
    options = {"shuffle": True, "augment": True, "seed": 3, "prefetch": 0}
    whole = Loader(data, 16, **options)
    shares = [Loader(data, 16, share=(r, ranks), **options) for r in range(ranks)]
    for epoch in (0, 1):
        for index in range(len(whole)):
            x, labels = whole.batch(epoch, index)
            parts = [share.batch(epoch, index) for share in shares]
            assert [len(p[1]) for p in parts] == [b - a for a, b in (batch_share(len(labels), ranks, r)
                                                                     for r in range(ranks))]
            np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), x)
            np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), labels)


class _Mailboxes:
    """Point-to-point messages between simulated ranks of one process (what RingAllreduce uses)."""

    class MPI:
        class Request:
            @staticmethod
            def Testall(requests):  # noqa: N802 - mpi4py's name
                return all(r() for r in requests)

    def __init__(self, size: int):
        self.size, self.sent, self.boxes = size, 0, {}

    def rank(self, rank: int):
        mail = self

        class Rank:
            MPI, size = mail.MPI, mail.size

            def isend(self, buffer, dest, tag, channel="other"):
                mail.boxes.setdefault((rank, dest, tag), []).append(buffer.copy())
                mail.sent += buffer.nbytes
                return lambda: True

            def irecv(self, buffer, source, tag, channel="other"):
                def arrived():
                    box = mail.boxes.get((source, rank, tag))
                    if not box:
                        return False
                    buffer[...] = box.pop(0)
                    return True
                done = []
                return lambda: bool(done) or (arrived() and not done.append(True))

        out = Rank()
        out.rank = rank
        return out


@pytest.mark.parametrize("ranks", [2, 3, 5])
def test_the_ring_gives_every_rank_the_same_fixed_order_sum(ranks, rng):
    size = 23  # chunks of 5 and 4 elements
    values = [rng.standard_normal(size) for _ in range(ranks)]
    mail = _Mailboxes(ranks)
    rings = [RingAllreduce(mail.rank(r), size, np.float64, tag=7) for r in range(ranks)]
    buffers = [v.copy() for v in values]
    for ring, buffer in zip(rings, buffers):
        ring.start(buffer)
    for _ in range(4 * ranks):  # the ranks take turns, as their messages arrive
        if all([ring.progress() for ring in rings]):
            break
    assert all(ring.progress() for ring in rings)
    expected = np.empty(size)
    for c, (start, stop) in enumerate(chunk_bounds(size, ranks)):  # chunk c: x_c + x_(c+1) + ...
        total = values[c][start:stop].copy()
        for k in range(1, ranks):
            total = values[(c + k) % ranks][start:stop] + total
        expected[start:stop] = total
    for buffer in buffers:
        np.testing.assert_array_equal(buffer, expected)
    np.testing.assert_allclose(expected, np.sum(values, axis=0), rtol=1e-13)
    assert abs(mail.sent / ranks - 2 * (ranks - 1) / ranks * size * 8) <= 2 * 8  # per rank, chunks differ by one


# --------------------------------------------------------------------------- the ring under mpiexec

@needs_mpi
@pytest.mark.parametrize("ranks", [2, 4])
def test_the_ring_is_bitwise_repeatable_the_same_on_every_rank_and_moves_2_n_minus_1_over_n(tmp_path, ranks):
    _ok(_driver("layers", tmp_path / "one", 0, "numpy"))
    one = np.load(tmp_path / "one" / "grads.npz")
    runs = []
    for name in ("a", "b"):
        _ok(_driver("layers", tmp_path / name, ranks, "numpy", "ring"))
        runs.append([np.load(tmp_path / name / f"grads_rank{r}.npz") for r in range(ranks)])
    first = runs[0][0]
    for key in one.files:
        if key == "buckets":
            continue
        for rank_grads in runs[0] + runs[1]:
            np.testing.assert_array_equal(rank_grads[key], first[key], err_msg=key)  # every rank, both runs
        np.testing.assert_allclose(first[key], one[key], rtol=1e-12, atol=1e-14, err_msg=key)
    size = int(first["gradient_bytes"])
    for rank_grads in runs[0]:  # 2 (N - 1) / N of the gradients, to a few elements (uneven chunks)
        assert abs(int(rank_grads["sent"]) - 2 * (ranks - 1) / ranks * size) <= 2 * 8 * int(first["buckets"])


@needs_mpi
def test_float64_four_ranks_with_the_ring_compute_what_one_process_computes(tmp_path):
    """sync-BN, dropout, EMA, clipping, an uneven last batch (12 rows: 3 per rank), 4 rows per rank."""
    _ok(_driver("train", tmp_path / "one", 0))
    _ok(_driver("train", tmp_path / "four", 4))
    (a, meta_a), (b, meta_b) = (load_checkpoint(tmp_path / n / "checkpoint.npz") for n in ("one", "four"))
    _close(a, b)
    for h1, h2 in zip(meta_a["history"], meta_b["history"]):
        for field in ("train_loss", "val_loss", "train_top1", "val_top1"):
            assert h1[field] == pytest.approx(h2[field], rel=1e-12), field


@needs_mpi
def test_a_run_checkpointed_with_the_ordered_reduction_resumes_with_it_and_says_so(tmp_path):
    def cli(run, *args):
        return _bounded([MPIEXEC, "-n", "2", *NPX, *args, "--out", str(run)] if args[0] == "train" and "--resume"
                        not in args else [MPIEXEC, "-n", "2", *NPX, *args])

    whole, part = tmp_path / "whole", tmp_path / "part"
    _ok(cli(whole, *TINY, "--reduction", "ordered", "--max-steps", "2"))
    _ok(cli(part, *TINY, "--reduction", "ordered", "--max-steps", "1"))
    result = cli(part, "train", "--resume", str(part), "--quiet", "--max-steps", "1")
    _ok(result)
    assert result.stderr.count(f"note: {part} sums its gradients with --reduction ordered, as it was trained") == 1
    (a, _), (b, meta_b) = load_checkpoint(whole), load_checkpoint(part)
    assert meta_b["distributed"]["reduction"] == "ordered" and (meta_b["epoch"], meta_b["batch"]) == (0, 2)
    for key in a["model"]:
        np.testing.assert_array_equal(a["model"][key], b["model"][key], err_msg=key)


# --------------------------------------------------------------------------- streamed, on 2 ranks

def _shards_with_one_bad_image(root: Path, count: int = 40) -> tuple[Path, int]:
    """`count` small JPEGs in shards of 10; the 6th sample of epoch 0's order (seed 3) is unreadable."""
    from tests.streaming_data import jpeg_bytes, picture, write_shard

    rng = np.random.default_rng(0)
    bad = int(epoch_order(count, True, 3, 0)[5])
    samples = [(f"sample{i:05d}", b"\xff\xd8\xff\xe0 not a JPEG" if i == bad else
                jpeg_bytes(picture(rng, 24, 28)), i % 3) for i in range(count)]
    root.mkdir(parents=True)
    for start in range(0, count, 10):
        write_shard(root / f"part-{start // 10:03d}.tar", samples[start:start + 10])
    return root, bad


@needs_mpi
def test_two_ranks_on_streamed_shards_decode_only_their_rows_and_train_as_one_process(tmp_path):
    shards, bad = _shards_with_one_bad_image(tmp_path / "shards")
    spec = str(shards / "part-{000..003}.tar")
    _ok(_driver("stream", tmp_path / "one", 0, spec))
    _ok(_driver("stream", tmp_path / "two", 2, spec))
    one = np.load(tmp_path / "one" / "batches_rank0.npz")
    two = [np.load(tmp_path / "two" / f"batches_rank{r}.npz") for r in range(2)]
    assert len(one["y0"]) == 7  # the unreadable image was skipped from the first batch
    for b in range(5):
        np.testing.assert_array_equal(np.concatenate([t[f"x{b}"] for t in two]), one[f"x{b}"])
        np.testing.assert_array_equal(np.concatenate([t[f"y{b}"] for t in two]), one[f"y{b}"])
    reads = [json.loads((tmp_path / "two" / f"reads_rank{r}.json").read_text()) for r in range(2)]
    whole = json.loads((tmp_path / "one" / "reads_rank0.json").read_text())
    assert [len(r) for r in reads] == [20, 20] and len(whole) == 40  # each rank read its half, once each
    assert sorted(reads[0] + reads[1]) == sorted(whole) == list(range(40))
    # Two steps, the first over 7 rows (4 + 3): the same weights as one process.
    _close(*(load_checkpoint(tmp_path / n / "run")[0] for n in ("one", "two")), groups=("model", "optimizer"))
    assert load_checkpoint(tmp_path / "two" / "run")[1]["running"]["seen"] == 15


# --------------------------------------------------------------------------- hung ranks

@needs_mpi
def test_a_slow_first_step_does_not_trip_the_deadline(tmp_path):
    """Rank 1 spends 4 s in its first forward (as compiling kernels would) under a 1 s deadline."""
    _ok(_driver("slow", tmp_path / "run", 2, "0", "4", "1"))
    assert load_checkpoint(tmp_path / "run")[1]["batch"] == 3


@needs_mpi
def test_a_rank_stuck_in_a_step_ends_the_job_within_the_deadline_naming_it(tmp_path):
    start = time.monotonic()
    result = _driver("slow", tmp_path / "run", 2, "2", "600", "3")  # rank 1 sleeps in step 3's forward
    took = time.monotonic() - start
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("npxception:")]
    assert lines == ["npxception: rank 0 of 2: rank 1 of 2 did not arrive within --comm-timeout 3 s (the batch-norm "
                     "statistics of step 3); the last step reached was 2, the last checkpoint is kept; aborting "
                     "all 2 ranks"], result.stderr
    assert took < 30, took


@needs_mpi
def test_a_stopped_rank_ends_the_job_within_the_deadline_and_keeps_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    command = [MPIEXEC, "-n", "2", *NPX, *TINY, "--epochs", "100", "--comm-timeout", "10", "--out", str(run)]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT,
                           start_new_session=True)
    victim = None
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (run / "checkpoint.npz").exists() and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.05)
        victim = rank_pid(job.pid, 1)
        os.kill(victim, signal.SIGSTOP)
        stopped = time.monotonic()
        out, err = job.communicate(timeout=30)
        took = time.monotonic() - stopped
    finally:
        if victim is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGCONT)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGKILL)
        job.communicate()
    assert job.returncode != 0
    lines = [line for line in err.splitlines() if line.startswith("npxception:")]
    assert len(lines) == 1 and lines[0].startswith("npxception: rank 0 of 2: rank 1 of 2 did not arrive within "
                                                   "--comm-timeout 10 s ("), err
    assert "the last step reached was " in lines[0], lines[0]
    assert took < 10 + 15, took  # the deadline, the roll call (2 s), the abort, rank 0's plots
    assert load_checkpoint(run)[1]["epoch"] >= 1


# --------------------------------------------------------------------------- two hosts over TCP

def _netns_unavailable() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2; .ci/run installs it)"
    return None


@contextlib.contextmanager
def _two_hosts():
    """Two network namespaces joined by a veth pair, 10.231.0.1 and 10.231.0.2; always removed."""
    tag = f"{os.getpid() % 10**7}"
    spaces, links = (f"npx{tag}a", f"npx{tag}b"), (f"vx{tag}a", f"vx{tag}b")
    made = []

    def ip(*args):
        return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)

    try:
        for space in spaces:
            result = ip("netns", "add", space)
            if result.returncode != 0:
                pytest.skip(f"cannot create a network namespace: {result.stderr.strip()}")
            made.append(space)
        steps = [("link", "add", links[0], "type", "veth", "peer", "name", links[1])]
        for space, link, address in zip(spaces, links, ("10.231.0.1/24", "10.231.0.2/24")):
            steps += [("link", "set", link, "netns", space), ("-n", space, "addr", "add", address, "dev", link),
                      ("-n", space, "link", "set", link, "up"), ("-n", space, "link", "set", "lo", "up")]
        for step in steps:
            result = ip(*step)
            if result.returncode != 0:
                pytest.skip(f"cannot join the namespaces (ip {' '.join(step)}): {result.stderr.strip()}")
        yield spaces
    finally:
        for space in made:  # removes the veth pair with it
            ip("netns", "delete", space)


@needs_mpi
@pytest.mark.skipif(_netns_unavailable() is not None, reason=_netns_unavailable() or "")
def test_two_hosts_over_tcp_train_as_one_process(tmp_path):
    """One rank in each of two network namespaces (two hosts to MPICH: no shared memory), launched
    by Hydra's ssh launcher through a script that enters the host's namespace instead of SSH. The
    namespaces share one kernel, where UCX (the wheel's netmod) would reach the other rank through
    shared memory or cross-memory attach: UCX_TLS=tcp,self keeps it to TCP over the veth pair, as
    between two machines; MPIEXEC_PORT_RANGE and UCX_TCP_PORT_RANGE are the README's firewall ranges."""
    with _two_hosts() as (first, second):
        hosts = tmp_path / "hosts"
        hosts.write_text("10.231.0.1:1\n10.231.0.2:1\n")
        enter = tmp_path / "enter_host.sh"
        enter.write_text(f"""#!/bin/sh
# Hydra calls: enter_host.sh [ssh options] HOST COMMAND...
while [ "${{1#-}}" != "$1" ]; do shift; done
host="$1"; shift
case "$host" in
  10.231.0.1) space={first} ;;
  10.231.0.2) space={second} ;;
  *) echo "enter_host.sh: unknown host $host" >&2; exit 1 ;;
esac
exec ip netns exec "$space" sh -c "$*"
""")
        enter.chmod(0o755)
        command = ["ip", "netns", "exec", first, MPIEXEC, "-f", str(hosts), "-n", "2", "-launcher", "ssh",
                   "-launcher-exec", str(enter), sys.executable, DRIVER, "train", str(tmp_path / "two")]
        _ok(_bounded(command, UCX_TLS="tcp,self", MPIEXEC_PORT_RANGE="50000:50100",
                     UCX_TCP_PORT_RANGE="50101-50200"))
    _ok(_driver("train", tmp_path / "one", 0))
    (a, meta_a), (b, meta_b) = (load_checkpoint(tmp_path / n) for n in ("one", "two"))
    _close(a, b)
    hosts_seen = json.loads((tmp_path / "two" / "hosts.json").read_text())
    assert hosts_seen == {"ranks": 2, "ranks_on_rank_0s_host": 1}, hosts_seen  # TCP, not shared memory
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == len(meta_b["history"]) == 2
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
