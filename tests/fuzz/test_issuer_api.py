"""Schema-driven fuzzing (schemathesis) of /openapi.json: no input may produce a 5xx.

Bounded by the fuzz budget (tests/fuzz/conftest.py): a few dozen positive and negative
examples per operation in `make test`, more in `make fuzz`. (Schemathesis's pytest
plugin does not run under pytest 9 here, so its strategies are driven by Hypothesis directly.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import given
from hypothesis.errors import Unsatisfiable

from tests.fuzz.conftest import fuzz_settings
from tests.issuer.support import IssuerProcess


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode))
def test_no_server_errors(issuer: IssuerProcess, mode: schemathesis.GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(issuer.url + "/openapi.json")
    seen = []
    for result in schema.get_all_operations():
        op = result.ok()
        seen.append(f"{op.method.upper()} {op.path}")

        @given(op.as_strategy(generation_mode=mode))
        @fuzz_settings(0.5)
        def run(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(timeout=10)
            assert response.status_code < 500, (case.method, case.path, response.text[:300])

        try:
            run()
        except Unsatisfiable:
            # Negative mode has nothing to break in an operation without inputs.
            assert mode is schemathesis.GenerationMode.NEGATIVE
    assert {"POST /login", "POST /token", "POST /revoke", "POST /introspect",
            "GET /authorize"} <= set(seen)
