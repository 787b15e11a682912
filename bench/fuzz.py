"""The NIR fuzzer of tests/fuzz at scale: N examples, counted instead of stopping at the first failure.

Same strategies and the same property (tests/fuzz/fuzz_harness.py: exit 0 or one-line exit 2, inputs
unchanged, no hang, bounded memory) as `make test`'s 2 x 1,000 examples. Prints, per family, the
exits of each command, and every failure class (exception type and the line it came from, or the
broken property) with a count and one example's description.

A hang inside C code (HDF5) cannot be interrupted in-process: the harness's faulthandler ends the
process. So each family runs in a worker process that records its tallies and the example it is on
after every example; when a worker dies, this process counts that example as a failure (with the
stuck frame faulthandler wrote to fuzz_harness.HANG_LOG) and starts a new worker, which skips the
examples already done.

    nice -n 19 .venv/bin/python bench/fuzz.py [--examples 20000] [--family structure|bytes|both] [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "fuzz"), str(ROOT / "tests")]


class Tally:
    """Exit codes per command, failure classes, and where a worker is (saved after every example)."""

    def __init__(self, state: Path | None = None, skip: int = 0):
        self.exits: collections.Counter = collections.Counter()  # "command exit code" -> count
        self.failures: collections.Counter = collections.Counter()
        self.example: dict[str, str] = {}
        self.examples, self.skip, self.state = 0, skip, state

    def check(self, describe, fn) -> None:
        """Run one example (fn), unless it is among the first `skip` ones (done by a previous worker)."""
        from fuzz_harness import Hang, PropertyFailure

        self.examples += 1
        if self.examples <= self.skip:
            return
        self.save(describe())
        try:
            for command, outcome in fn():
                self.exits[f"{command} exit {outcome.code}"] += 1
        except (PropertyFailure, Hang) as exc:
            self.fail(f"{type(exc).__name__}: {str(exc).split(': ', 1)[-1][:100]}", describe())
        except Exception as exc:  # noqa: BLE001  (a traceback the user would see: count it, go on)
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            self.fail(f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno} ({str(exc)[:80]})", describe())

    def fail(self, key: str, describe: str) -> None:
        self.failures[key] += 1
        self.example.setdefault(key, describe[:2000])

    def save(self, current: str) -> None:
        if self.state is not None:
            self.state.write_text(json.dumps({"examples": self.examples, "current": current[:2000], "exits": self.exits,
                                              "failures": self.failures, "example": self.example}))

    def merge(self, saved: dict) -> None:
        self.exits.update(saved["exits"])
        self.failures.update(saved["failures"])
        for key, value in saved["example"].items():
            self.example.setdefault(key, value)

    def report(self, family: str, examples: int, seconds: float) -> None:
        print(f"{family}: {examples} examples in {seconds:.0f} s; failures {sum(self.failures.values())}")
        for key, n in sorted(self.exits.items()):
            print(f"  {key}: {n}")
        for key, n in self.failures.most_common():
            print(f"  FAIL x{n}: {key}\n      e.g. {self.example[key][:300]}")


def fuzz(family: str, n: int, tally: Tally, hypothesis_seed: int) -> None:
    """The tests' two @given tests, with their checks counted by `tally` instead of raised."""
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st

    from fuzz_harness import BASES, RUN_OPTIONS, base_files, run_case
    from nir_strategies import apply_edits, byte_edits, nir_cases
    from nir_trees import write_tree

    def outcomes(path, run_with, input_shape, case_seed):
        commands = ["info"] + (["run"] if run_with is not None else [])
        return list(zip(commands, run_case(path, run_with, input_shape, case_seed)))

    generate = settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
                        suppress_health_check=list(HealthCheck))

    @seed(hypothesis_seed)
    @generate
    @given(case=nir_cases(), run=st.sampled_from([None] * 3 + RUN_OPTIONS), case_seed=st.integers(0, 2**16))
    def structure(case, run, case_seed):
        with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
            path = Path(tmp) / "g.nir"
            tally.check(lambda: f"run={run} tree={case.tree!r}",
                        lambda: (write_tree(path, case.tree), outcomes(path, run, case.input_shape, case_seed))[1])

    @seed(hypothesis_seed)
    @generate
    @given(base=st.sampled_from(sorted(BASES)), edits=st.lists(byte_edits, min_size=1, max_size=4),
           run=st.integers(0, 3), case_seed=st.integers(0, 2**16))
    def mutated_bytes(base, edits, run, case_seed):
        input_shape, options = BASES[base]
        with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
            path = Path(tmp) / f"{base}.nir"
            run_with = options if run == 0 else None
            tally.check(lambda: f"{base} {edits} run={run_with}",
                        lambda: (path.write_bytes(apply_edits(base_files()[base], edits)),
                                 outcomes(path, run_with, input_shape, case_seed))[1])

    {"structure": structure, "bytes": mutated_bytes}[family]()


def _hang_site() -> str:
    """Where faulthandler found the worker stuck (its innermost spikestack frame), if it was a hang."""
    from fuzz_harness import HANG_LOG

    text = HANG_LOG.read_text() if HANG_LOG.exists() else ""
    frames = [line.strip() for line in text.splitlines() if "/spikestack/" in line]
    if not text.startswith("Timeout") or not frames:
        return "a crash (see its stderr above)"
    where = frames[0].split('"')[1].rsplit("/spikestack/", 1)[1], frames[0].split("line ")[1].split()[0]
    return f"hang in C code under spikestack/{where[0]}:{where[1]}"


def supervise(family: str, n: int, hypothesis_seed: int) -> tuple[Tally, float]:
    """Run `family` in workers until all n examples are done; a dead worker's example is a hang."""
    tally, start, done = Tally(), time.perf_counter(), 0
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.json"
        while done < n:
            state.unlink(missing_ok=True)
            worker = subprocess.run([sys.executable, __file__, "--worker", family, "--examples", str(n), "--skip", str(done),
                                     "--seed", str(hypothesis_seed), "--state", str(state)])
            saved = json.loads(state.read_text()) if state.exists() else None
            if saved is None:
                raise SystemExit(f"{family} worker exited {worker.returncode} before its first example")
            tally.merge(saved)
            if worker.returncode == 0:
                break
            tally.fail(f"dead worker (exit {worker.returncode}): {_hang_site()}", saved["current"])
            done = saved["examples"]
    return tally, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20_000,
                        help="examples in all (default 20,000), split evenly between the families run")
    parser.add_argument("--family", choices=["structure", "bytes", "both"], default="both")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (runs are reproducible)")
    parser.add_argument("--worker", choices=["structure", "bytes"], help=argparse.SUPPRESS)
    parser.add_argument("--skip", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # one family, --examples of it, after the first --skip
        tally = Tally(args.state, args.skip)
        fuzz(args.worker, args.examples, tally, args.seed)
        tally.save("")
        return 0
    families = [f for f in ("structure", "bytes") if args.family in (f, "both")]
    per_family = args.examples // len(families)
    failed, begin = 0, time.perf_counter()
    for family in families:
        tally, seconds = supervise(family, per_family, args.seed)
        tally.report(family, per_family, seconds)
        failed += sum(tally.failures.values())
    print(f"total: {per_family * len(families)} examples, {failed} failures, {time.perf_counter() - begin:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
