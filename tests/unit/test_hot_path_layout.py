"""The per-request and per-connection objects of the data plane carry no instance dict.

CPython 3.11 stops specialising attribute access on dict-based instances of a class once ~30
instances exist before the class's names are known, and never for more than 30 names: under
64 connections that cost ~2 µs of CPU per request (docs/benchmarks.md, "Where the time goes").
A class on the request path that loses its __slots__ (or gains a base without them) fails here.
"""

from __future__ import annotations

import pytest

from wardgate.gateway.client_flow import RequestFlow
from wardgate.gateway.output import Output
from wardgate.gateway.protocol import ClientProtocol
from wardgate.gateway.proxy import Exchange
from wardgate.gateway.request import Request
from wardgate.gateway.upstream.cluster import Target
from wardgate.gateway.upstream.connection import UpstreamConnection


@pytest.mark.parametrize("cls", [Request, Exchange, ClientProtocol, UpstreamConnection, Target,
                                 RequestFlow, Output])
def test_request_path_classes_have_no_instance_dict(cls):
    assert cls.__dictoffset__ == 0, f"{cls.__name__} instances would carry a __dict__"


def test_a_request_has_every_field_set_at_creation():
    # Slots (or a compiled class's fields, src/wardgate/_native.py) read before they are set
    # raise AttributeError: __init__ must set them all.
    req = Request()
    names = getattr(Request, "__slots__", None) or Request.__mypyc_attrs__  # type: ignore[attr-defined]
    assert len(names) >= 30
    assert all(hasattr(req, name) for name in names)
    assert req.body is None and req.params == {} and req.headers == []
