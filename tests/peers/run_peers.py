"""Run Gymnasium's and Stable-Baselines3's vector-env suites before and after gymrpc.

"Before" runs each suite as it is (their own ``SyncVectorEnv``/``DummyVecEnv``...);
"after" runs it again with the ``gymrpc_peers`` plugin, which puts gymrpc remote envs in
their place. The script prints the counts of both runs and every test whose outcome
changed, with the first line of its error. See tests/peers/README.md for where the
suites come from.

Usage (from the repository root)::

    /tmp/peers-venv/bin/python tests/peers/run_peers.py \
        --gymnasium /tmp/gymnasium --sb3 /tmp/sb3 --output /tmp/peers-runs
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUPPORT = HERE.parent / "support"

#: The test paths of each suite, relative to its checkout.
SUITES = {
    "gymnasium": ["tests/vector", "tests/wrappers/vector"],
    "sb3": ["tests/test_vec_envs.py"],
}
OUTCOMES = ("passed", "failed", "error", "skipped")


@dataclass(frozen=True)
class Result:
    """One test's outcome and the first line of its message (failures, errors, skips)."""

    outcome: str
    message: str = ""


def run_suite(
    python: str, checkout: Path, paths: list[str], junit: Path, *, gymrpc: bool, timeout: int
) -> int:
    """Run one suite in its checkout with pytest; return pytest's exit status."""
    command = [
        python,
        "-m",
        "pytest",
        *paths,
        "-p",
        "no:cacheprovider",
        f"--timeout={timeout}",
        "-q",
        "-rfE",
        f"--junitxml={junit}",
        # One pytest-xdist worker: a test that crashes the interpreter (an environment's
        # segfault) is reported as failed and the worker restarts, instead of ending the run.
        "-n",
        "1",
        "--max-worker-restart=1000",
    ]
    if gymrpc:
        command[3:3] = ["-p", "gymrpc_peers"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), str(SUPPORT), *filter(None, [env.get("PYTHONPATH")])]
    )
    # MuJoCo renders off-screen with OSMesa (Debian's libosmesa6) on a machine without a GPU.
    env.setdefault("MUJOCO_GL", "osmesa")
    env.setdefault("PYOPENGL_PLATFORM", "osmesa")
    log = junit.with_suffix(".log")
    print(f"$ (cd {checkout} && {' '.join(command)})  > {log}", flush=True)
    with log.open("w") as out:
        return subprocess.run(
            command, cwd=checkout, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode


def read_junit(path: Path) -> dict[str, Result]:
    """The outcome of every test case in a JUnit XML report, by test id."""
    results: dict[str, Result] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in {"failure", "error", "skipped"}:
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                lines = (child.get("message") or "").strip().splitlines()
                message = lines[0] if lines else ""
                if outcome != "skipped":
                    break
        # A test that fails and then errors in teardown has two entries: keep the worst.
        if test_id in results and results[test_id].outcome in {"failed", "error"}:
            continue
        results[test_id] = Result(outcome, message)
    return results


def counts(results: dict[str, Result]) -> dict[str, int]:
    """How many tests had each outcome."""
    tally = collections.Counter(result.outcome for result in results.values())
    return {outcome: tally.get(outcome, 0) for outcome in OUTCOMES}


def main() -> int:
    """Run the suites and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gymnasium", type=Path, help="Gymnasium v1.4.0 checkout (tests/)")
    parser.add_argument("--sb3", type=Path, help="Stable-Baselines3 2.9.2 sources (tests/)")
    parser.add_argument("--output", type=Path, default=Path("/tmp/peers-runs"))
    parser.add_argument("--python", default=sys.executable, help="interpreter with pytest")
    parser.add_argument("--timeout", type=int, default=300, help="per-test timeout, seconds")
    parser.add_argument(
        "--only", choices=("before", "after"), help="run only one side (default: both)"
    )
    args = parser.parse_args()
    checkouts = {"gymnasium": args.gymnasium, "sb3": args.sb3}
    args.output.mkdir(parents=True, exist_ok=True)
    sides = [args.only] if args.only else ["before", "after"]
    summary: dict[str, dict[str, dict[str, int]]] = {}
    for suite, checkout in checkouts.items():
        if checkout is None:
            continue
        runs: dict[str, dict[str, Result]] = {}
        for side in sides:
            junit = args.output / f"{suite}-{side}.xml"
            started = time.monotonic()
            status = run_suite(
                args.python,
                checkout.resolve(),
                SUITES[suite],
                junit,
                gymrpc=side == "after",
                timeout=args.timeout,
            )
            runs[side] = read_junit(junit)
            elapsed = time.monotonic() - started
            print(f"{suite} {side}: {counts(runs[side])} (exit {status}, {elapsed:.0f} s)")
        summary[suite] = {side: counts(results) for side, results in runs.items()}
        if len(runs) == 2:
            changed = {
                test_id: result
                for test_id, result in runs["after"].items()
                if result.outcome in {"failed", "error"}
                and runs["before"].get(test_id, Result("missing")).outcome == "passed"
            }
            print(f"\n{suite}: {len(changed)} tests pass before and fail after:")
            for test_id, result in sorted(changed.items()):
                print(f"  {result.outcome.upper():7} {test_id}: {result.message[:160]}")
            print()
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
