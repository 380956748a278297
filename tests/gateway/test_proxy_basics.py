"""End to end through the real gateway to a real upstream on 127.0.0.1."""

from __future__ import annotations

import http.client
import json

from tests.gateway.conftest import plain_config
from tests.support.gateway import raw_exchange, status_of


def get(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET",
        body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def test_proxies_and_rewrites_forwarding_headers(gateway, upstream):
    status, headers, body = get(gateway.port, "/echo/x?q=1", {"X-Custom": "yes"})
    assert status == 200
    seen = json.loads(body)
    assert seen["target"] == "/echo/x?q=1"
    h = dict(seen["headers"])
    assert h["x-custom"] == "yes"
    assert h["x-forwarded-for"] == "127.0.0.1"
    assert h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-host"] == f"127.0.0.1:{gateway.port}"
    assert h["forwarded"].startswith("for=127.0.0.1;proto=http")
    assert h["via"] == "1.1 wardgate"
    assert h["host"] == f"127.0.0.1:{upstream.port}"  # preserve_host is off by default
    assert headers["x-request-id"] == h["x-request-id"]
    assert headers["via"] == "1.1 wardgate"


def test_untrusted_client_cannot_spoof_forwarded_headers(gateway, upstream):
    _, _, body = get(gateway.port, "/echo", {
        "X-Forwarded-For": "6.6.6.6", "Forwarded": "for=6.6.6.6", "X-Forwarded-Host": "evil",
        "X-Wardgate-User": "admin", "X_Forwarded_For": "7.7.7.7",
    })
    h = json.loads(body)["headers"]
    names = [n for n, _ in h]
    d = dict(h)
    assert d["x-forwarded-for"] == "127.0.0.1"
    assert "6.6.6.6" not in d["forwarded"]
    assert d["x-forwarded-host"] != "evil"
    assert "x-wardgate-user" not in names
    assert "x_forwarded_for" not in names


def test_trusted_proxy_chain_is_appended(upstream, gateway_factory):
    gw = gateway_factory({**plain_config(upstream.url), "trusted_proxies": ["127.0.0.0/8"]})
    _, _, body = get(gw.port, "/echo", {"X-Forwarded-For": "203.0.113.7",
                                       "X-Forwarded-Proto": "https"})
    d = dict(json.loads(body)["headers"])
    assert d["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert d["x-forwarded-proto"] == "https"


def test_hop_by_hop_headers_removed_both_ways(gateway, upstream):
    _, _, body = get(gateway.port, "/echo", {
        "Connection": "keep-alive, X-Secret-Hop", "X-Secret-Hop": "1", "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic Zm9vOmJhcg==", "TE": "trailers",
    })
    names = [n for n, _ in json.loads(body)["headers"]]
    for hop in ("x-secret-hop", "keep-alive", "proxy-authorization", "te"):
        assert hop not in names


def test_inbound_request_id_is_kept_and_returned(gateway):
    _, headers, body = get(gateway.port, "/echo", {"X-Request-Id": "abc-123"})
    assert headers["x-request-id"] == "abc-123"
    assert dict(json.loads(body)["headers"])["x-request-id"] == "abc-123"
    _, headers, _ = get(gateway.port, "/echo", {"X-Request-Id": "bad id\twith junk"})
    assert headers["x-request-id"] != "bad id\twith junk"


def test_keepalive_reuses_upstream_connections(gateway, upstream):
    c = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
    for _ in range(50):
        c.request("GET", "/echo")
        assert c.getresponse().read()
    c.close()
    assert len(upstream.requests) == 50
    assert upstream.connections <= 2


def test_no_route_is_404_problem_json(upstream, gateway_factory):
    cfg = plain_config(upstream.url, match={"path_prefix": "/api", "methods": ["GET"]})
    gw = gateway_factory(cfg)
    status, headers, body = get(gw.port, "/other")
    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["status"] == 404
    status, headers, body = get(gw.port, "/api/x", method="DELETE")
    assert status == 405
    assert headers["allow"] == "GET, HEAD"
    assert json.loads(body)["title"] == "Method Not Allowed"
    assert upstream.requests == []


def test_pipelined_requests_answered_in_order(gateway, upstream):
    reqs = b"".join(
        b"GET /slow?ms=%d&i=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (ms, i)
        for i, ms in enumerate((120, 10, 60, 0))
    )
    out, _ = raw_exchange(gateway.port, reqs, timeout=3)
    bodies = [json.loads(b[b.index(b"{"):b.index(b"}", b.rindex(b'"sha256"')) + 1])
              for b in out.split(b"HTTP/1.1 200 OK")[1:]]
    assert [b["target"].split("i=")[1] for b in bodies] == ["0", "1", "2", "3"]


def test_http10_request_gets_close_delimited_or_length_response(gateway):
    out, closed = raw_exchange(gateway.port, b"GET /big?n=1000&chunked=1 HTTP/1.0\r\n\r\n")
    assert status_of(out) == 200
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower()
    assert body == b"x" * 1000
    assert closed


def test_chunked_upstream_rechunked_for_http11_client(gateway):
    status, headers, body = get(gateway.port, "/big?n=200000&chunked=1")
    assert status == 200 and body == b"x" * 200000
    assert headers.get("transfer-encoding") == "chunked"


def test_head_response_has_no_body_and_connection_reused(gateway, upstream):
    c = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
    for _ in range(3):
        c.request("HEAD", "/echo")
        r = c.getresponse()
        assert r.status == 200 and r.read() == b""
        c.request("GET", "/echo")
        assert json.loads(c.getresponse().read())["method"] == "GET"
    assert upstream.connections == 1


def test_post_body_forwarded_with_length(gateway):
    status, _, body = get(gateway.port, "/echo", method="POST", body=b"a" * 5000,
                          headers={"Content-Type": "text/plain"})
    assert status == 200 and json.loads(body)["body_len"] == 5000


def test_upstream_refused_is_502_then_ejected_503(upstream, gateway_factory):
    dead = "http://127.0.0.1:1"
    gw = gateway_factory(plain_config(dead))
    status, headers, body = get(gw.port, "/echo")
    assert status == 502
    assert json.loads(body)["code"] == "connect_refused"
    get(gw.port, "/echo")
    get(gw.port, "/echo")
    status, headers, _ = get(gw.port, "/echo")
    # Retry-After says when the ejected target is tried again (ejection_s defaults to 10).
    assert status == 503 and 9 <= int(headers["retry-after"]) <= 10


def test_refused_target_retried_on_the_other(upstream, gateway_factory):
    gw = gateway_factory(plain_config("http://127.0.0.1:1", upstream.url))
    for _ in range(6):
        status, _, _ = get(gw.port, "/echo", method="POST", body=b"x")
        assert status == 200
    assert len(upstream.requests) == 6


def test_upstream_read_timeout_is_504(upstream, gateway_factory):
    cfg = plain_config(upstream.url)
    cfg["upstreams"][0]["timeouts"] = {"read_s": 0.3}
    gw = gateway_factory(cfg)
    status, _, body = get(gw.port, "/slow?ms=2000")
    assert status == 504
    assert json.loads(body)["code"] == "read_timeout"


def test_round_robin_with_weights(upstream, upstream_b, gateway_factory):
    cfg = plain_config()
    cfg["upstreams"][0]["targets"] = [{"url": upstream.url, "weight": 3},
                                      {"url": upstream_b.url, "weight": 1}]
    gw = gateway_factory(cfg)
    for _ in range(40):
        get(gw.port, "/echo")
    assert (len(upstream.requests), len(upstream_b.requests)) == (30, 10)


def test_strip_prefix_and_rewrite(upstream, gateway_factory):
    cfg = plain_config(upstream.url)
    cfg["routes"] = [
        {"name": "strip", "match": {"path_prefix": "/api/v1"}, "upstream": "up", "auth": "none",
         "strip_prefix": True},
        {"name": "rw", "match": {"path": "/users/{id}/profile"}, "upstream": "up", "auth": "none",
         "rewrite": "/internal/profiles/{id}"},
    ]
    gw = gateway_factory(cfg)
    get(gw.port, "/api/v1/orders/7?x=1")
    get(gw.port, "/users/42/profile")
    get(gw.port, "/api/v1")
    assert upstream.paths() == ["/orders/7?x=1", "/internal/profiles/42", "/"]


def test_dot_segments_normalised_before_routing(upstream, gateway_factory):
    cfg = plain_config(upstream.url, match={"path_prefix": "/public"})
    gw = gateway_factory(cfg)
    status, _, _ = get(gw.port, "/public/../admin")
    assert status == 404
    status, _, _ = get(gw.port, "/public/%2e%2e/admin")
    assert status == 404
    status, _, _ = get(gw.port, "/public/a/../b")
    assert status == 200
    assert upstream.paths() == ["/public/b"]


def test_idle_pooled_connections_are_closed_after_idle_timeout(upstream, gateway_factory):
    cfg = plain_config(upstream.url)
    cfg["upstreams"][0]["pool"] = {"idle_timeout_s": 0.3}
    gw = gateway_factory(cfg)
    get(gw.port, "/echo")
    get(gw.port, "/echo")
    assert upstream.connections == 1
    import time

    time.sleep(1.0)
    get(gw.port, "/echo")
    assert upstream.connections == 2


def test_expect_100_continue(gateway):
    import socket

    s = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    first = s.recv(4096)
    assert first == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(b"hello")
    rest = b""
    while b'"sha256"' not in rest:
        rest += s.recv(65536)
    s.close()
    assert rest.startswith(b"HTTP/1.1 200 OK")
    body = json.loads(rest[rest.index(b"{"):])
    assert body["body_len"] == 5
    assert "expect" not in dict(body["headers"])


def test_client_half_close_still_gets_its_answer(gateway):
    import socket

    s = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        buf = s.recv(65536)
        if not buf:
            break
        data += buf
    s.close()
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert b"Connection: close" in data


def test_host_with_port_out_of_range_is_400(gateway, upstream):
    out, closed = raw_exchange(gateway.port, b"GET /echo HTTP/1.1\r\nHost: x:99999\r\n\r\n")
    assert status_of(out) == 400 and closed
    assert upstream.requests == []


def test_rejected_request_never_echoes_an_invalid_request_id(gateway):
    out, _ = raw_exchange(gateway.port, b"GET /echo HTTP/1.1\r\nHost: a b\r\n"
                                        b"X-Request-Id: <script>x</script>\r\n\r\n")
    assert status_of(out) == 400
    assert b"<script>" not in out


def test_keep_alive_requests_with_repeated_and_changed_fields(gateway, upstream):
    # The gateway reuses what it derived from the previous request's fields when a client
    # repeats them; any change must be seen (spoofed forwarding headers, Host, framing).
    c = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
    plan = [
        ("GET", "/echo/a", {"X-Custom": "1"}, None),
        ("GET", "/echo/a", {"X-Custom": "1"}, None),
        ("GET", "/echo/b", {"X-Custom": "1", "X-Forwarded-For": "6.6.6.6"}, None),
        ("POST", "/echo/c", {"X-Custom": "1"}, b"hello"),
        ("GET", "/echo/a", {"X-Custom": "2", "Host": "api.example"}, None),
        ("GET", "/echo/a", {"X-Custom": "1"}, None),
    ]
    seen, ids = [], []
    for method, path, headers, body in plan:
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        seen.append(json.loads(r.read()))
        ids.append(r.getheader("X-Request-Id"))
    c.close()
    hdrs = [dict(s["headers"]) for s in seen]
    assert [s["target"] for s in seen] == ["/echo/a", "/echo/a", "/echo/b", "/echo/c", "/echo/a",
                                           "/echo/a"]
    assert [h["x-custom"] for h in hdrs] == ["1", "1", "1", "1", "2", "1"]
    assert all(h["x-forwarded-for"] == "127.0.0.1" for h in hdrs)
    assert seen[3]["body_len"] == 5 and hdrs[3]["content-length"] == "5"
    assert all("content-length" not in h for i, h in enumerate(hdrs) if i != 3)
    assert hdrs[4]["x-forwarded-host"] == "api.example"
    assert hdrs[5]["x-forwarded-host"] == f"127.0.0.1:{gateway.port}"
    assert len(set(ids)) == len(plan)  # fresh ids even when every field repeats
    assert [h["x-request-id"] for h in hdrs] == ids
