"""wardgate: an API gateway with JWT authorization at the edge, and the issuer that feeds it."""

from wardgate import _native

__version__ = "0.1.0"

_native.install()  # before anything imports the data plane (see _native.py)
