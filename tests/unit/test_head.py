from __future__ import annotations

import pytest

from wardgate.errors import BadRequest, HttpVersionNotSupported
from wardgate.gateway.head import foreign_protocol, read_fields, read_request_line, refresh_fields
from wardgate.gateway.request import Request


def head(headers, version="1.1", method=b"GET", url=b"/x", foreign=False) -> Request:
    req = Request()
    req.headers = headers
    read_request_line(req, version, method, url, foreign)  # the order the client protocol uses
    read_fields(req)
    return req


def test_fills_request_fields():
    req = head([(b"host", b"API.example.com:8443"), (b"content-length", b"5"),
                (b"expect", b"100-continue")], method=b"POST", url=b"/a/../b?q=1")
    assert (req.method, req.path, req.query) == ("POST", "/b", b"q=1")
    assert req.host == "api.example.com" and req.host_header == b"API.example.com:8443"
    assert req.content_length == 5 and req.expect_continue


@pytest.mark.parametrize("headers,version", [
    ([], "1.1"),
    ([(b"host", b"a"), (b"host", b"b")], "1.1"),
    ([(b"host", b"a b/c@d")], "1.1"),
    ([(b"host", b"x:99999")], "1.1"),
    ([(b"host", b"x"), (b"transfer-encoding", b"chunked")], "1.0"),
    ([(b"host", b"x"), (b"expect", b"something-else")], "1.1"),
])
def test_bad_heads_are_400(headers, version):
    with pytest.raises(BadRequest) as exc:
        head(headers, version)
    assert exc.value.close


def test_http10_without_host_is_fine_and_ipv6_host_kept():
    assert head([], "1.0").host == ""
    assert head([(b"host", b"[::1]:80")]).host == "[::1]"


@pytest.mark.parametrize("version,foreign", [("2.0", False), ("0.9", False), ("1.0", True)])
def test_versions_other_than_http_10_11_are_505(version, foreign):
    with pytest.raises(HttpVersionNotSupported):
        head([(b"host", b"x")], version, foreign=foreign)


def test_foreign_protocol_detection_spans_reads():
    assert foreign_protocol(b"", b"GET /echo RTSP/1.0\r\n", b"/echo")
    assert foreign_protocol(b"prev.../echo IC", b"E/1.0", b"/echo")
    assert not foreign_protocol(b"", b"GET /echo HTTP/1.0\r\n", b"/echo")


_RAW = [(b"Host", b"api"), (b"Authorization", b"Bearer one"), (b"Cookie", b"a=1  ")]
_LOW = [(b"host", b"api"), (b"authorization", b"Bearer one"), (b"cookie", b"a=1")]


def test_refresh_fields_takes_new_values_outside_the_fact_fields() -> None:
    fields = [(b"Host", b"api"), (b"Authorization", b"Bearer second"), (b"Cookie", b"b=22 ")]
    fresh = refresh_fields(_RAW, _LOW, fields)
    assert fresh is not None
    lowered, grown = fresh
    assert lowered == [(b"host", b"api"), (b"authorization", b"Bearer second"),
                       (b"cookie", b"b=22")]
    assert grown == 3 + 0  # raw sizes, trailing whitespace included: "b=22 " vs "a=1  "
    assert _LOW == [(b"host", b"api"), (b"authorization", b"Bearer one"), (b"cookie", b"a=1")]


@pytest.mark.parametrize("changed", [
    [(b"Host", b"other"), (b"Authorization", b"Bearer one"), (b"Cookie", b"a=1  ")],
    [(b"host", b"api"), (b"Authorization", b"Bearer one"), (b"Cookie", b"a=1  ")],  # name case
    [(b"Host", b"api"), (b"Content-Length", b"5"), (b"Cookie", b"a=1  ")],  # another name
    [(b"Host", b"api"), (b"Authorization", b"Bearer one"), (b"Cookie", b"a=1  ")],  # no change
])
def test_refresh_fields_refuses_changed_names_and_fact_fields(changed) -> None:
    assert refresh_fields(_RAW, _LOW, changed) is None


@pytest.mark.parametrize("name", [b"Content-Length", b"Transfer-Encoding", b"Expect", b"Upgrade",
                                  b"X-Request-Id", b"HOST"])
def test_refresh_fields_never_reuses_facts_across_a_fact_field_change(name) -> None:
    raw = [(b"Host", b"api"), (name, b"1")]
    low = [(n.lower(), v) for n, v in raw]
    assert refresh_fields(raw, low, [(b"Host", b"api"), (name, b"2")]) is None
