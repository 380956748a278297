"""joserfc's registries, narrowed to what a provider allows. Kept interpreted on purpose.

These classes subclass joserfc's. The build compiles without joserfc installed, so in a
compiled module their base is a class mypy cannot see; mypyc then built them as native classes
on a base they do not match, and the first registry made corrupted memory (a segfault at
import, in CI). So they live here, outside the compiled set (_native.py), and mypyc.ini makes
such a subclass in a compiled module a build error (disallow_subclassing_any).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from joserfc.errors import MissingClaimError, UnsupportedAlgorithmError
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry
from joserfc.registry import HeaderParameter


def _forbid(_: Any) -> None:
    raise ValueError("is not accepted")


# Header parameters that would let a token choose or carry its own key, or change how the
# payload is read (RFC 8725 §3.10; RFC 7797 b64; RFC 7515 §4.1.11 crit). Refused outright.
FORBIDDEN_HEADERS = ("jku", "jwk", "x5u", "x5c", "crit", "b64")
_HEADER_REGISTRY = {name: HeaderParameter(name, _forbid) for name in FORBIDDEN_HEADERS}


class OneAlgRegistry(JWSRegistry):
    """A JWSRegistry that allows exactly one algorithm, decided by our key, never by the token.

    Overriding get_alg keeps joserfc from falling back to its default set and skips the per-call
    EdDSA naming warning (RFC 9864 renames the algorithm, nothing is insecure).
    """

    def __init__(self, alg: str) -> None:
        # unknown header names are ignored as RFC 7515 §4 requires; the dangerous ones are
        # refused above and in verifier.py
        super().__init__(header_registry=_HEADER_REGISTRY, algorithms=[alg],
                         strict_check_header=False)
        self._alg = alg
        self.max_header_length = 2048

    def get_alg(self, name: str) -> Any:
        if name != self._alg or name not in self.algorithms:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


class ClaimsRegistry(JWTClaimsRegistry):
    """joserfc's JWTClaimsRegistry with its options fixed at construction.

    The stock `validate` rebuilds the set of essential claims and looks up a `validate_<name>`
    method by string for every claim of every token. Our options never change after __init__,
    so both are resolved once: the essential names, and a table from claim name to the bound
    method joserfc's `validate` would call for it (`validate_<name>`, else `check_value` for a
    claim with options, else nothing). Every check is still joserfc's own; a token that misses
    an essential claim goes through joserfc's `validate` unchanged, for its error.
    """

    def __init__(self, now: Callable[[], float], leeway: int, **options: Any) -> None:
        super().__init__(now=now, leeway=leeway, **options)  # type: ignore[arg-type]
        self._essential = tuple(key for key, option in options.items() if option.get("essential"))
        self._checks: dict[str, Callable[[Any], None]] = {
            name.removeprefix("validate_"): getattr(self, name)
            for name in dir(self) if name.startswith("validate_")}
        for key in options:
            if key not in self._checks:
                self._checks[key] = functools.partial(self.check_value, key)

    @property
    def essential_keys(self) -> set[str]:
        return set(self._essential)

    def validate(self, claims: dict[str, Any]) -> None:
        for key in self._essential:
            if claims.get(key) is None:
                super().validate(claims)  # raises MissingClaimError naming every missing claim
                raise MissingClaimError(key)  # not reached
        checks = self._checks
        for key, value in claims.items():
            check = checks.get(key)
            if check is not None:
                check(value)
