"""wardgate: an API gateway with JWT authorization at the edge, and the issuer that feeds it."""

__version__ = "0.1.0"
