"""Property-based fuzzing of every NIR-reading path of the CLI (`info`, `run`), issue #17.

Two families, each SPIKESTACK_FUZZ_EXAMPLES examples (default 1,000, reproducible: derandomized, no
example database): NIR files broken in their structure, values, dtypes and HDF5 links
(`nir_strategies.nir_cases`), and byte mutations of the NIR paper's fixtures and of a small MLP.
Every example must keep the contract of `fuzz_harness.run_cli`: exit 0 or one-line exit 2, inputs
unchanged, no hang, bounded memory. bench/fuzz.py runs the same properties at 20,000 examples.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_harness import BASES, RUN_OPTIONS, base_files, run_case
from nir_strategies import NirCase, apply_edits, byte_edits, nir_cases
from nir_trees import write_tree

EXAMPLES = int(os.environ.get("SPIKESTACK_FUZZ_EXAMPLES", "1000"))

FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, print_blob=True,
                suppress_health_check=list(HealthCheck))
# deadline=None: the hang guard is fuzz_harness.deadline (SIGALRM, 20 s); hypothesis' own deadline
# would report a slow moment of this shared machine as a flaky failure.


@FUZZ
@given(case=nir_cases(), run=st.sampled_from([None] * 3 + RUN_OPTIONS), seed=st.integers(0, 2**16))
def test_structure_fuzz(case: NirCase, run: list[str] | None, seed: int) -> None:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        path = Path(tmp) / "g.nir"
        write_tree(path, case.tree)
        run_case(path, run, case.input_shape, seed)


@FUZZ
@given(base=st.sampled_from(sorted(BASES)), edits=st.lists(byte_edits, min_size=1, max_size=4),
       run=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_byte_fuzz(fixtures_dir, base: str, edits, run: int, seed: int) -> None:
    input_shape, options = BASES[base]
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        path = Path(tmp) / f"{base}.nir"
        path.write_bytes(apply_edits(base_files()[base], edits))
        run_case(path, options if run == 0 else None, input_shape, seed)
