"""The fuzz suite's budget. `make test` runs a short one (a few seconds per target); `make fuzz`
sets WARDGATE_FUZZ_EXAMPLES (and WARDGATE_FUZZ_SEED unset: a fresh random run each time)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from tests.issuer.conftest import issuer  # noqa: F401 - the schemathesis target

EXAMPLES = int(os.environ.get("WARDGATE_FUZZ_EXAMPLES", "40"))
# Short runs are derandomized (the same examples every time: no flaky failures in `make test`);
# a long `make fuzz` run explores fresh inputs unless WARDGATE_FUZZ_DERANDOMIZE=1.
DERANDOMIZE = os.environ.get("WARDGATE_FUZZ_DERANDOMIZE", "1" if EXAMPLES <= 100 else "0") == "1"


def fuzz_settings(scale: float = 1.0) -> settings:
    return settings(max_examples=max(5, int(EXAMPLES * scale)), deadline=None,
                    derandomize=DERANDOMIZE, database=None, print_blob=True,
                    suppress_health_check=list(HealthCheck))
