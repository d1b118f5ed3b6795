"""What the ranks of a job compare before the first step, so that ranks started differently stop
together with one line instead of hanging or training apart.

Ranks only meet in every collective if they make the same ones: the same number of steps, batches
and evaluations, through the same buckets and batch norms. A job is checked twice, each time with
one allgather of a few hundred bytes per rank:

  set-up  whether each rank got through its set-up (options, data, model, checkpoint) and, when it
          did not, its one-line error;
  plan    the data descriptions and every setting that decides the collectives of the run (epochs,
          batch size, step limit, where a resume starts, sync-BN, buckets, the model's layout), each
          as its short JSON or, when long, a digest of it.

Every rank gathers the same values and so reaches the same verdict: no rank is left waiting in a
collective, the job ends without MPI_Abort, and rank 0 says it once.
"""

from __future__ import annotations

import hashlib
import json

SHORT = 120  # characters of JSON a value travels as; a longer one (a long class list) as its digest


def entries(plan: dict) -> dict[str, str]:
    """`plan` as name -> short text: JSON when short, else a digest (the same on every rank)."""
    out = {}
    for name, value in plan.items():
        text = json.dumps(value, sort_keys=True, default=str)
        out[name] = text if len(text) <= SHORT else "digest " + hashlib.sha256(text.encode()).hexdigest()[:16]
    return out


def plan_differences(gathered: list[dict[str, str]]) -> str | None:
    """One line naming every entry that is not the same on all ranks and which ranks hold which
    value; None when the ranks agree. `gathered[r]` is rank r's `entries`."""
    names = list(dict.fromkeys(name for ranks_entries in gathered for name in ranks_entries))
    parts = []
    for name in names:
        values = [ranks_entries.get(name, "(none)") for ranks_entries in gathered]
        if len(set(values)) > 1:
            parts.append(f"{name}: " + ", ".join(f"{value} on {_ranks(ranks)}" for value, ranks in _holders(values)))
    if not parts:
        return None
    return (f"the {len(gathered)} ranks were started differently ({'; '.join(parts)}); every rank must run the "
            "same command on the same data")


def set_up_failures(lines: list[str | None]) -> str | None:
    """One line for the ranks' set-up outcomes (`lines[r]`: rank r's error, None if it succeeded);
    None when every rank succeeded. An error every rank hit alike is said as one process says it."""
    failed = [(rank, line) for rank, line in enumerate(lines) if line is not None]
    if not failed:
        return None
    if len(failed) == len(lines) and len({line for _, line in failed}) == 1:
        return failed[0][1]
    rank, line = failed[0]
    others = [r for r, _ in failed[1:]]
    return f"rank {rank} of {len(lines)}: {line}" + (f" (and {_ranks(others)} failed too)" if others else "")


def _holders(values: list[str]) -> list[tuple[str, list[int]]]:
    """(value, ranks holding it), in the order of the first rank holding each."""
    by_value: dict[str, list[int]] = {}
    for rank, value in enumerate(values):
        by_value.setdefault(value, []).append(rank)
    return list(by_value.items())


def _ranks(ranks: list[int]) -> str:
    return f"rank {ranks[0]}" if len(ranks) == 1 else f"ranks {', '.join(map(str, ranks))}"
