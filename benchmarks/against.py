"""This checkout side by side with an older commit, on this machine, in one sitting.

Machines here differ by up to 3x in speed and drift by 10% within minutes, so a speed-up is only a
ratio of two figures measured together. This checks the older commit out in a temporary git
worktree (run with this checkout's .venv: both must want the same torch), then alternates the two,
round by round, in the other order each round:
- the quick demo headless (`python -m lenet preset quick_demo`);
- the same demo watched by the teacher's two Chromium tabs (benchmarks.watching, workers cold);
- with --reproduce, `python -m lenet reproduce --seeds 1` (about 5 minutes each on 2 cores).

Each figure is reported per run, since commits may train a different number of runs, with the
older commit's time over this one's (above 1: this checkout is faster).

    python -m benchmarks.against 086dac6 [--rounds 2] [--reproduce] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from lenet.workspace import REPO_ROOT

from .viewers import stop_workers
from .watching import headless, run_cli, watched

THIS = "this checkout"


@contextlib.contextmanager
def older_checkout(commit: str):
    """`commit` checked out in a temporary worktree of this repository, with this checkout's .venv."""
    with tempfile.TemporaryDirectory(prefix="lenet-against-") as tmp:
        folder = Path(tmp) / "older"
        git = ["git", "-C", str(REPO_ROOT)]
        subprocess.run(
            [*git, "worktree", "add", "--detach", str(folder), commit], check=True, capture_output=True
        )
        try:
            (folder / ".venv").symlink_to(REPO_ROOT / ".venv")
            yield folder
        finally:
            subprocess.run(
                [*git, "worktree", "remove", "--force", str(folder)], check=True, capture_output=True
            )


def reproduce(log, checkout: Path) -> dict:
    """`reproduce --seeds 1`: seconds, runs and each variant's test accuracy."""
    with tempfile.TemporaryDirectory(prefix="lenet-against-") as tmp:
        seconds, rows = run_cli(Path(tmp), checkout, "reproduce", "--seeds", "1")
        stop_workers(Path(tmp))
    log(f"  reproduce --seeds 1: {seconds:.1f} s")
    return {
        "seconds": seconds,
        "runs": sum(row["seeds"] for row in rows),
        "test_accuracy": {row["variant"]: row["test_accuracy"] for row in rows},
    }


MEASURES = {"headless": headless, "watched": watched, "reproduce": reproduce}


def summarize(rounds: list[dict]) -> dict:
    """Per measure: each side's median seconds per run, and the older one's over this one's."""
    summary = {}
    for measure in rounds[0][THIS]:
        per_run = {
            side: statistics.median(r[side][measure]["seconds"] / r[side][measure]["runs"] for r in rounds)
            for side in rounds[0]
        }
        older = next(side for side in per_run if side != THIS)
        summary[measure] = {"s_per_run": per_run, "speedup": per_run[older] / per_run[THIS]}
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.against", description=__doc__.split("\n")[0])
    parser.add_argument("commit", help="the older commit to compare with, e.g. 086dac6")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the two (default 2)")
    parser.add_argument("--reproduce", action="store_true", help="also `reproduce --seeds 1` (~5 min a side)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    log = (lambda message: print(message, file=sys.stderr)) if args.json else print
    measures = ["headless", "watched"] + (["reproduce"] if args.reproduce else [])
    rounds = []
    with older_checkout(args.commit) as older:
        sides = {THIS: REPO_ROOT, args.commit: older}
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]  # drift falls on both alike
            rounds.append({side: {} for side in sides})
            for measure in measures:
                for side in order:
                    log(f"round {r + 1}/{args.rounds}, {side}:")
                    rounds[-1][side][measure] = MEASURES[measure](log, checkout=sides[side])
    summary = {"commit": args.commit, "measures": summarize(rounds), "rounds": rounds}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for measure, result in summary["measures"].items():
        this, other = result["s_per_run"][THIS], result["s_per_run"][args.commit]
        print(
            f"{measure}: {this:.2f} s a run against {other:.2f} s for {args.commit}: {result['speedup']:.2f}x"
        )
    for side in (THIS, args.commit):
        watching = [r[side]["watched"] for r in rounds]
        cores = [(w["browser_cpu_per_s"], w["server_cpu_per_s"]) for w in watching]
        ratios = [r[side]["watched"]["seconds"] / r[side]["headless"]["seconds"] for r in rounds]
        print(
            f"{side}: watched over headless "
            + ", ".join(f"{x:.2f}x" for x in ratios)
            + "; per second of watching, Chromium "
            + ", ".join(f"{b:.2f}" for b, _ in cores)
            + " cores, the server "
            + ", ".join(f"{s:.3f}" for _, s in cores)
        )
    if args.reproduce:
        for side in (THIS, args.commit):
            accuracies = [r[side]["reproduce"]["test_accuracy"] for r in rounds]
            print(f"{side}: test accuracy " + "; ".join(f"{v} {a:.4f}" for v, a in accuracies[0].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
