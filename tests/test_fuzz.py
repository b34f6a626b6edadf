"""The fuzzer (tests/fuzz.py) in the suite: a few thousand seeded calls with broken arguments over
the kernel table (native against reference), the layers, the functional ops and the optimizers,
in child processes so a crash or a hang is a failure, not the end of the run.  The long run is
``python tests/fuzz.py --calls 30000`` (README, developer notes)."""
from __future__ import annotations

import fuzz


def test_fuzzed_calls_are_clean_and_agree():
    res = fuzz.run(calls=2000, seed=0, per_batch=500, timeout=600.0)
    assert res["calls"] == 2000
    problems = res["crashes"] + res["hangs"] + res["findings"]
    assert not problems, f"{len(problems)} problems, the first ones:\n" + "\n".join(problems[:10])
