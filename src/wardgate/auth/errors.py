"""Internal outcomes of the auth layer, mapped onto wardgate.errors at the route boundary.

`Rejected.reason` is a short code for the access log and metrics; it never reaches the client
beyond the generic RFC 6750 description chosen in route.py.
"""

from __future__ import annotations


class Rejected(Exception):
    """The token is not acceptable (401 invalid_token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownKid(Rejected):
    """The token names a key we do not hold; the caller may refetch the key set once."""

    def __init__(self) -> None:
        super().__init__("unknown_kid")


class KeysUnavailable(Exception):
    """The provider has no usable keys (never loaded, or stale beyond max_stale_s): 503."""

    def __init__(self, provider: str) -> None:
        super().__init__(provider)
        self.provider = provider
