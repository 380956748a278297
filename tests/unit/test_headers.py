from __future__ import annotations

from wardgate.gateway.headers import (
    RequestIds,
    TrustedProxies,
    client_response_lines,
    response_head,
    upstream_request_lines,
)


def up(headers, trusted=False, strip=frozenset(), ip="10.0.0.9", reserved=True):
    lines = upstream_request_lines(headers, strip, client_ip=ip, scheme="https", host=b"api.test",
                                   trusted=trusted, request_id=b"rid", keep_upgrade=False,
                                   reserved=reserved)
    return b"\r\n".join(lines).split(b"\r\n")  # an element may hold several lines


def test_connection_listed_and_hop_by_hop_removed():
    lines = up([(b"connection", b"close, x-hop"), (b"x-hop", b"1"), (b"te", b"trailers"),
                (b"upgrade", b"h2c"), (b"proxy-authorization", b"x"), (b"accept", b"*/*")])
    names = {ln.split(b":")[0].lower() for ln in lines}
    assert b"accept" in names
    assert not names & {b"connection", b"x-hop", b"te", b"upgrade", b"proxy-authorization"}


def test_identity_and_underscore_headers_stripped():
    lines = up([(b"x-user-id", b"admin"), (b"x-wardgate-roles", b"admin"), (b"x_user_id", b"a"),
                (b"accept", b"1")], strip=frozenset({b"x-user-id"}))
    assert lines[0] == b"accept: 1"
    assert not any(b"admin" in ln for ln in lines)


def test_identity_headers_of_an_auth_route_may_use_the_reserved_prefix():
    # the auth filter dropped inbound x-wardgate-* and added the verified ones
    lines = up([(b"x-wardgate-actor", b"orders-svc"), (b"x_user_id", b"a")], reserved=False)
    assert lines[0] == b"x-wardgate-actor: orders-svc"
    assert not any(b"x_user_id" in ln for ln in lines)


def test_forwarded_untrusted_replaced_trusted_appended():
    hdrs = [(b"x-forwarded-for", b"1.2.3.4"), (b"forwarded", b"for=1.2.3.4")]
    untrusted = up(hdrs)
    assert b"X-Forwarded-For: 10.0.0.9" in untrusted
    assert b'Forwarded: for=10.0.0.9;proto=https;host="api.test"' in untrusted
    trusted = up(hdrs, trusted=True)
    assert b"X-Forwarded-For: 1.2.3.4, 10.0.0.9" in trusted
    assert b'Forwarded: for=1.2.3.4, for=10.0.0.9;proto=https;host="api.test"' in trusted


def test_ipv6_forwarded_node_is_quoted():
    lines = up([], ip="::1")
    assert b'Forwarded: for="[::1]";proto=https;host="api.test"' in lines


def test_response_hop_by_hop_removed_and_via_appended():
    lines = client_response_lines([(b"connection", b"x-a"), (b"x-a", b"1"),
                                   (b"transfer-encoding", b"chunked"), (b"via", b"1.0 other"),
                                   (b"content-type", b"text/plain")], keep_upgrade=False)
    assert lines == [b"content-type: text/plain", b"Via: 1.0 other, 1.1 wardgate"]


def test_request_ids_unique_and_inbound_validated():
    ids = RequestIds()
    assert ids.next(None) != ids.next(None)
    assert ids.next(b"abc-1") == b"abc-1"
    assert ids.next(b"bad value\r\n") != b"bad value\r\n"


def test_request_ids_stay_unique_and_well_formed_across_many_thousands():
    # The counter's low digits are preformatted per 4,096: the boundaries must not repeat an id.
    ids = RequestIds()
    seen = [ids.fresh() for _ in range(3 * 4096 + 10)]
    assert len(set(seen)) == len(seen)
    assert all(ids.next(i) == i for i in seen[4090:4100])  # each a valid inbound id too
    prefix = seen[0].split(b"-")[0]
    assert [int(i.split(b"-")[1], 16) for i in seen[4094:4098]] == [4095, 4096, 4097, 4098]
    assert all(i.startswith(prefix + b"-") for i in seen)


def test_trusted_proxies_cidrs():
    t = TrustedProxies(["10.0.0.0/8", "::1"])
    assert "10.1.2.3" in t and "::1" in t
    assert "11.0.0.1" not in t and "garbage" not in t


def test_switching_protocols_keeps_upgrade_even_though_connection_names_it():
    lines = client_response_lines([(b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
                                   (b"sec-websocket-accept", b"abc")], keep_upgrade=True)
    assert b"Upgrade: websocket" in lines
    assert b"sec-websocket-accept: abc" in lines


def test_untrusted_forwarding_lines_same_with_and_without_inbound_copies():
    bare = up([(b"accept", b"1")])
    spoofed = up([(b"accept", b"1"), (b"x-forwarded-for", b"6.6.6.6"),
                  (b"x-forwarded-host", b"evil"), (b"forwarded", b"for=6.6.6.6")])
    assert bare == spoofed
    assert not any(b"6.6.6.6" in ln or b"evil" in ln for ln in spoofed)


def test_response_names_keep_their_case_and_framing_is_reported():
    head = response_head([(b"Content-Type", b"text/plain"), (b"Content-Length", b"2 "),
                          (b"Connection", b"keep-alive"), (b"Keep-Alive", b"timeout=5"),
                          (b"X-Request-Id", b"theirs"), (b"Proxy-Foo", b"x")])
    assert head.lines == [b"Content-Type: text/plain", b"Via: 1.1 wardgate"]
    assert head.length == b"2" and head.coding is None


def test_response_transfer_coding_reported_lower_case():
    head = response_head([(b"Transfer-Encoding", b"Chunked")])
    assert head.coding == b"chunked" and head.length is None
