"""The per-route filter: token sources, the requirement tree, answers, cache and forwarding."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from wardgate.auth.errors import Rejected
from wardgate.errors import (
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    ServiceUnavailable,
)

from .helpers import (
    AUD,
    ISS,
    NOW,
    Env,
    claims,
    make_env,
    provider_config,
    public_jwk,
    request,
    sign,
)

AT = {"alg": "RS256", "kid": "rsa1", "typ": "at+jwt"}
POLICY = {"providers": ["main"], "require": {"scopes": ["orders:read"]}}


def tok(key: Any, **over: Any) -> bytes:
    return sign(AT, claims(**over), key)


def www(err: Exception) -> str:
    assert hasattr(err, "extra_headers")
    return dict(err.extra_headers())[b"WWW-Authenticate"].decode()


async def test_design_minimal_example_accepts_and_rejects(env: Env, rsa_key: Any) -> None:
    route = env.route(POLICY)
    req = request(token=tok(rsa_key, scope="orders:read profile"))
    await route.authenticate(req)
    assert req.auth_outcome == "ok"
    assert req.identity.provider == "main" and len(req.identity.sub_hash) == 16
    assert "alice" not in req.identity.sub_hash


async def test_missing_token_is_401_without_error_code(env: Env) -> None:
    req = request()
    with pytest.raises(MissingToken) as info:
        await env.route(POLICY).authenticate(req)
    assert info.value.status == 401
    assert www(info.value) == 'Bearer realm="wardgate"'  # RFC 6750 §3.1: no error attribute
    assert req.auth_outcome == "no_token"


async def test_invalid_token_answer_is_generic(env: Env, rsa_other: Any) -> None:
    req = request(token=tok(rsa_other))
    with pytest.raises(InvalidToken) as info:
        await env.route(POLICY).authenticate(req)
    header = www(info.value)
    assert 'error="invalid_token"' in header and "signature" not in header
    assert req.auth_outcome == "bad_signature"


async def test_expired_token_description(env: Env, rsa_key: Any) -> None:
    req = request(token=tok(rsa_key, exp=int(NOW) - 100))
    with pytest.raises(InvalidToken) as info:
        await env.route(POLICY).authenticate(req)
    assert "expired" in www(info.value) and req.auth_outcome == "expired"


async def test_insufficient_scope_is_403_with_scope(env: Env, rsa_key: Any) -> None:
    policy = {"providers": ["main"], "require": {"scopes": ["orders:read", "orders:write"]}}
    req = request(token=tok(rsa_key, scope="orders:read"))
    with pytest.raises(InsufficientScope) as info:
        await env.route(policy).authenticate(req)
    assert info.value.status == 403
    assert 'error="insufficient_scope"' in www(info.value)
    assert 'scope="orders:write"' in www(info.value)
    assert req.auth_outcome == "insufficient_scope"


async def test_scopes_from_scp_array_and_string(env: Env, rsa_key: Any) -> None:
    route = env.route(POLICY)
    await route.authenticate(request(token=tok(rsa_key, scp=["orders:read"])))
    await route.authenticate(request(token=tok(rsa_key, scp="x orders:read")))
    with pytest.raises(InsufficientScope):
        await route.authenticate(request(token=tok(rsa_key, scope=["orders:read "])))
    with pytest.raises(InsufficientScope):
        await route.authenticate(request(token=tok(rsa_key, scope="orders:reader")))


async def test_roles_at_configured_claim_path(tmp_path: Path, rsa_key: Any, jwks: Any) -> None:
    env = await make_env([provider_config(tmp_path, jwks, roles_claim="realm_access.roles")])
    route = env.route({"providers": ["main"], "require": {"roles": ["admin"]}})
    await route.authenticate(request(token=tok(rsa_key, realm_access={"roles": ["admin", "x"]})))
    req = request(token=tok(rsa_key, roles=["admin"], realm_access={"roles": ["user"]}))
    with pytest.raises(InsufficientScope) as info:
        await route.authenticate(req)
    assert info.value.scope is None and req.auth_outcome == "forbidden"


@pytest.mark.parametrize("rule,value,ok", [
    ({"claim": "tenant", "equals_param": "tenant"}, "acme", True),
    ({"claim": "tenant", "equals_param": "tenant"}, "other", False),
    ({"claim": "tenant", "equals_param": "tenant"}, ["acme"], False),
    ({"claim": "tenants", "contains_param": "tenant"}, None, True),
])
async def test_claim_bound_to_path_param(env: Env, rsa_key: Any, rule: Any, value: Any, ok: bool) -> None:
    route = env.route({"providers": ["main"], "require": {"claims": [rule]}},
                      path="/t/{tenant}/orders")
    token = tok(rsa_key, tenant=value, tenants=["x", "acme"])
    req = request(path="/t/acme/orders", token=token, params={"tenant": "acme"})
    if ok:
        await route.authenticate(req)
    else:
        with pytest.raises(InsufficientScope):
            await route.authenticate(req)


def test_claim_param_must_be_captured_by_route(env: Env) -> None:
    with pytest.raises(ValueError, match="tenant"):
        env.route({"providers": ["main"],
                   "require": {"claims": [{"claim": "tenant", "equals_param": "tenant"}]}})


@pytest.mark.parametrize("rule,claims_over,ok", [
    ({"claim": "email_verified", "equals": True}, {"email_verified": True}, True),
    ({"claim": "email_verified", "equals": True}, {"email_verified": 1}, False),
    ({"claim": "email_verified", "equals": True}, {"email_verified": "true"}, False),
    ({"claim": "level", "in": [2, 3]}, {"level": 3}, True),
    ({"claim": "level", "in": [2, 3]}, {"level": True}, False),
    ({"claim": "groups", "contains": "ops"}, {"groups": ["dev", "ops"]}, True),
    ({"claim": "groups", "contains": "ops"}, {"groups": "devops"}, False),
    ({"claim": "email", "regex": r"[^@]+@example\.com"}, {"email": "a@example.com"}, True),
    ({"claim": "email", "regex": r"[^@]+@example\.com"}, {"email": "a@example.com.evil"}, False),
    ({"claim": "org.id", "equals": "o1"}, {"org": {"id": "o1"}}, True),
    ({"claim": "act", "exists": False}, {}, True),
    ({"claim": "act", "exists": False}, {"act": {"sub": "x"}}, False),
    ({"claim": "https://example.com/tier", "equals": "gold"},
     {"https://example.com/tier": "gold"}, True),
])
async def test_claim_rules(env: Env, rsa_key: Any, rule: Any, claims_over: Any, ok: bool) -> None:
    route = env.route({"providers": ["main"], "require": {"claims": [rule]}})
    req = request(token=tok(rsa_key, **claims_over))
    if ok:
        await route.authenticate(req)
    else:
        with pytest.raises(InsufficientScope):
            await route.authenticate(req)


@pytest.mark.parametrize(("act", "ok"), [
    ({"sub": "orders-svc"}, True),
    ({"sub": "orders-svc", "act": {"sub": "web-bff"}}, True),  # current actor is outermost
    ({"sub": "web-bff", "act": {"sub": "orders-svc"}}, False),  # orders-svc acted earlier only
    ({"sub": "billing-svc"}, False),
    ({"sub": ["orders-svc"]}, False),
    ("orders-svc", False),
    (None, False),  # not delegated at all
])
async def test_actors_requirement(env: Env, rsa_key: Any, act: Any, ok: bool) -> None:
    route = env.route({"providers": ["main"], "require": {"actors": ["orders-svc"]}})
    req = request(token=tok(rsa_key, **({"act": act} if act is not None else {})))
    if ok:
        await route.authenticate(req)
    else:
        with pytest.raises(InsufficientScope):
            await route.authenticate(req)


async def test_per_method_rules_and_optional_auth(env: Env, rsa_key: Any) -> None:
    route = env.route({"providers": ["main"], "require": {"scopes": ["orders:read"]},
                       "methods": {"get": {"allow_missing": True, "scopes": ["orders:read"]},
                                   "DELETE": {"roles": ["admin"]}}})
    anon = request("GET")
    await route.authenticate(anon)
    assert anon.identity is None and anon.auth_outcome == "anonymous"
    with pytest.raises(MissingToken):
        await route.authenticate(request("POST"))
    # optional auth never downgrades a bad token to anonymous
    with pytest.raises(InvalidToken):
        await route.authenticate(request("GET", token=b"x.y.z"))
    with pytest.raises(InsufficientScope):
        await route.authenticate(request("GET", token=tok(rsa_key, scope="other")))
    await route.authenticate(request("POST", token=tok(rsa_key, scope="orders:read")))
    await route.authenticate(request("DELETE", token=tok(rsa_key, roles=["admin"])))
    with pytest.raises(InsufficientScope):
        await route.authenticate(request("DELETE", token=tok(rsa_key, scope="orders:read")))


async def test_empty_requirement_still_needs_a_token(env: Env, rsa_key: Any) -> None:
    route = env.route({"providers": ["main"]})
    with pytest.raises(MissingToken):
        await route.authenticate(request())
    await route.authenticate(request(token=tok(rsa_key)))


async def test_requirement_tree_any_all_over_providers(tmp_path: Path, rsa_key: Any,
                                                       rsa_other: Any) -> None:
    partner_iss = "https://partner.example"
    env = await make_env([
        provider_config(tmp_path, {"keys": [public_jwk(rsa_key, "RS256", "rsa1")]}),
        provider_config(tmp_path, {"keys": [public_jwk(rsa_other, "RS256", "p1")]},
                        name="partner", issuer=partner_iss),
    ])
    route = env.route({"providers": ["main", "partner"], "require": {"any": [
        {"provider": "main", "scopes": ["orders:read"]},
        {"all": [{"provider": "partner"}, {"roles": ["integrator"]}]},
    ]}})
    main_ok = tok(rsa_key, scope="orders:read")
    partner_ok = sign({"alg": "RS256", "kid": "p1", "typ": "at+jwt"},
                      claims(iss=partner_iss, roles=["integrator"]), rsa_other)
    partner_no = sign({"alg": "RS256", "kid": "p1", "typ": "at+jwt"},
                      claims(iss=partner_iss, scope="orders:read"), rsa_other)
    for t in (main_ok, partner_ok):
        req = request(token=t)
        await route.authenticate(req)
    assert req.identity.provider == "partner"
    with pytest.raises(InsufficientScope):
        await route.authenticate(request(token=partner_no))
    # a token from a key of the other provider, claiming the main issuer: refused
    forged = sign(AT, claims(scope="orders:read"), rsa_other)
    with pytest.raises(InvalidToken):
        await route.authenticate(request(token=forged))
    # a route trusting only `main` does not accept partner tokens
    only_main = env.route({"providers": ["main"]})
    req = request(token=partner_ok)
    with pytest.raises(InvalidToken):
        await only_main.authenticate(req)
    assert req.auth_outcome == "unknown_issuer"


async def test_two_providers_with_one_issuer_on_a_route_refused(tmp_path: Path, jwks: Any) -> None:
    env = await make_env([provider_config(tmp_path, jwks),
                          provider_config(tmp_path, jwks, name="other", audiences=["x"])])
    with pytest.raises(ValueError, match="share an issuer"):
        env.route({"providers": ["main", "other"]})


# --- token sources -------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", [b"Bearer", b"bearer", b"BEARER", b"bEaReR"])
async def test_bearer_scheme_case_insensitive(env: Env, rsa_key: Any, scheme: bytes) -> None:
    req = request(headers=[(b"authorization", scheme + b" " + tok(rsa_key))])
    await env.route({"providers": ["main"]}).authenticate(req)


@pytest.mark.parametrize("value", [b"Bearer", b"Bearer ", b"Bearer a b", b"Bearer a,b",
                                   b'Bearer "x"'])
async def test_malformed_bearer_is_400(env: Env, value: bytes) -> None:
    req = request(headers=[(b"authorization", value)])
    with pytest.raises(InvalidRequest) as info:
        await env.route({"providers": ["main"]}).authenticate(req)
    assert info.value.status == 400 and 'error="invalid_request"' in www(info.value)


@pytest.mark.parametrize("token", [b"abc!def", b"a.b.c.d.e!", b"!" + b"a" * 9000,
                                   b"e30.e30.@", b"eyJ9.e30.x!"])
async def test_a_token_split_refuses_is_400_when_not_a_b64token(env: Env, token: bytes) -> None:
    # refused by compact.split (malformed, jwe, oversize) and not RFC 6750 b64token syntax
    req = request(headers=[(b"authorization", b"Bearer " + token)])
    with pytest.raises(InvalidRequest):
        await env.route({"providers": ["main"]}).authenticate(req)
    assert req.auth_outcome == "malformed_token"


@pytest.mark.parametrize("token", [b"abc~def", b"a.b.c.d.e", b"a" * 9000, b"e30.e30.+/==",
                                   b"eyJ9.e30.y"])
async def test_a_b64token_split_refuses_is_401(env: Env, token: bytes) -> None:
    req = request(headers=[(b"authorization", b"Bearer " + token)])
    with pytest.raises(InvalidToken):
        await env.route({"providers": ["main"]}).authenticate(req)
    assert req.auth_outcome in ("malformed", "jwe", "oversize")


async def test_a_forged_signature_is_401_bad_signature(env: Env, rsa_key: Any) -> None:
    head, body, sig = tok(rsa_key).split(b".")
    forged = head + b"." + body + b"." + (b"A" if sig[:1] != b"A" else b"B") + sig[1:]
    req = request(headers=[(b"authorization", b"Bearer " + forged)])
    with pytest.raises(InvalidToken):
        await env.route({"providers": ["main"]}).authenticate(req)
    assert req.auth_outcome == "bad_signature"


async def test_other_scheme_is_no_token(env: Env) -> None:
    req = request(headers=[(b"authorization", b"Basic dXNlcjpwYXNz")])
    with pytest.raises(MissingToken):
        await env.route({"providers": ["main"]}).authenticate(req)


async def test_two_authorization_headers_is_400(env: Env, rsa_key: Any) -> None:
    t = tok(rsa_key)
    req = request(headers=[(b"authorization", b"Bearer " + t), (b"authorization", b"Bearer " + t)])
    with pytest.raises(InvalidRequest):
        await env.route({"providers": ["main"]}).authenticate(req)
    assert req.auth_outcome == "multiple_authorization"


async def test_cookie_and_query_sources(env: Env, rsa_key: Any) -> None:
    t1, t2 = tok(rsa_key), tok(rsa_key, sub="bob")
    route = env.route({"providers": ["main"], "token": {"cookie": "at", "query": "access_token"}})
    await route.authenticate(request(headers=[(b"cookie", b"a=1; at=" + t1 + b"; b=2")]))
    await route.authenticate(request(query=b"x=1&access_token=" + t1))
    # the same token in two places is one token; two different tokens are a 400
    same = request(token=t1, headers=[(b"cookie", b"at=" + t1)])
    await route.authenticate(same)
    for req in (request(token=t1, headers=[(b"cookie", b"at=" + t2)]),
                request(token=t1, query=b"access_token=" + t2),
                request(headers=[(b"cookie", b"at=" + t1), (b"cookie", b"at=" + t2)]),
                request(query=b"access_token=" + t1 + b"&access_token=" + t1)):
        with pytest.raises(InvalidRequest):
            await route.authenticate(req)
        assert req.auth_outcome == "conflicting_tokens"


async def test_query_token_ignored_unless_opted_in(env: Env, rsa_key: Any) -> None:
    with pytest.raises(MissingToken):
        await env.route({"providers": ["main"]}).authenticate(
            request(query=b"access_token=" + tok(rsa_key)))


# --- forwarding -----------------------------------------------------------------------------

async def test_forward_strips_spoofed_and_adds_identity(env: Env, rsa_key: Any) -> None:
    route = env.route({"providers": ["main"], "payload_header": "X-Wardgate-Claims"},
                      claims_to_headers={"sub": "X-User-Id", "realm_access.roles": "X-User-Roles",
                                         "tenant": "X-Tenant", "missing": "X-Missing"})
    token = tok(rsa_key, realm_access={"roles": ["a", "b"]}, tenant="t\r\nX-Evil: 1")
    req = request(token=token, headers=[
        (b"x-user-id", b"admin"), (b"x-wardgate-anything", b"1"), (b"x-missing", b"spoof"),
        (b"x-wardgate-claims", b"spoof"), (b"accept", b"*/*")])
    await route.authenticate(req)
    route.forward(req)
    hdrs = dict(req.headers)
    assert req.headers.count((b"x-user-id", b"alice")) == 1 and len(req.headers) == 4
    assert hdrs[b"x-user-roles"] == b"a,b"
    assert b"x-tenant" not in hdrs and b"x-missing" not in hdrs  # CR/LF claim dropped
    assert b"authorization" not in hdrs and hdrs[b"accept"] == b"*/*"
    payload = json.loads(base64.urlsafe_b64decode(hdrs[b"x-wardgate-claims"] + b"=="))
    assert payload["sub"] == "alice" and payload["iss"] == ISS


async def test_forward_drops_token_from_cookie_and_query(env: Env, rsa_key: Any) -> None:
    t = tok(rsa_key)
    route = env.route({"providers": ["main"], "token": {"cookie": "at", "query": "access_token"}})
    req = request(headers=[(b"cookie", b"a=1; at=" + t + b"; b=2")], query=b"x=1&access_token=" + t)
    await route.authenticate(req)
    route.forward(req)
    assert req.headers == [(b"cookie", b"a=1; b=2")] and req.query == b"x=1"
    req = request(headers=[(b"cookie", b"at=" + t)], query=b"access_token=" + t)
    await route.authenticate(req)
    route.forward(req)
    assert req.headers == [] and req.query == b""


async def test_forward_token_true_keeps_it(env: Env, rsa_key: Any) -> None:
    t = tok(rsa_key)
    route = env.route({"providers": ["main"]}, forward_token=True)
    req = request(token=t, headers=[(b"x-wardgate-sub", b"spoof")])
    await route.authenticate(req)
    route.forward(req)
    assert req.headers == [(b"authorization", b"Bearer " + t)]


async def test_anonymous_forward_strips_spoofed_identity(env: Env) -> None:
    route = env.route({"providers": ["main"], "require": {"allow_missing": True}},
                      claims_to_headers={"sub": "X-User-Id"})
    req = request(headers=[(b"x-user-id", b"admin"), (b"authorization", b"Basic eA==")])
    await route.authenticate(req)
    route.forward(req)
    assert req.headers == [(b"authorization", b"Basic eA==")]


# --- cache, revocation, key availability --------------------------------------------------------

async def test_cache_hit_then_expiry(env: Env, rsa_key: Any) -> None:
    route = env.route({"providers": ["main"]})
    t = tok(rsa_key, exp=int(NOW) + 60)
    cache = env.registry.cache
    for _ in range(3):  # verified, verified and admitted (the doorkeeper), then a hit
        await route.authenticate(request(token=t))
    assert cache.hits == 1 and len(cache) == 1
    env.clock.now = NOW + 61  # past exp: the entry dies; within leeway re-verification passes
    await route.authenticate(request(token=t))
    assert cache.hits == 1
    env.clock.now = NOW + 100
    with pytest.raises(InvalidToken):
        await route.authenticate(request(token=t))
    assert len(cache) == 0


async def test_failures_are_never_cached(env: Env, rsa_other: Any) -> None:
    route = env.route({"providers": ["main"]})
    bad = tok(rsa_other)
    for _ in range(2):
        with pytest.raises(InvalidToken):
            await route.authenticate(request(token=bad))
    assert len(env.registry.cache) == 0


async def test_cache_entry_dies_with_its_key(env: Env, rsa_key: Any) -> None:
    route = env.route({"providers": ["main"]})
    t = tok(rsa_key)
    await route.authenticate(request(token=t))
    ring = env.registry.verifier("main").ring
    survivors = [ring.lookup("ec1"), ring.lookup("ed1")]
    ring.replace([k for k in survivors if k is not None])
    assert env.registry.cache.get(t, NOW) is None
    with pytest.raises(InvalidToken):
        await route.authenticate(request(token=t))


async def test_cache_is_bounded_lru(env: Env, rsa_key: Any) -> None:
    env.registry.cache.max_entries = 3
    route = env.route({"providers": ["main"]})
    tokens = [tok(rsa_key, sub=f"u{i}") for i in range(5)]
    for t in tokens:
        for _ in range(2):  # a token is admitted on its second verification
            await route.authenticate(request(token=t))
    assert len(env.registry.cache) == 3
    assert env.registry.cache.get(tokens[0], NOW) is None
    assert env.registry.cache.get(tokens[4], NOW) is not None


async def test_one_off_tokens_do_not_evict_the_working_set(env: Env, rsa_key: Any) -> None:
    """Admission (the doorkeeper): a token is cached on its second verification within a window
    of max_entries verifications, so a stream of tokens each used once, as a scan, a flood of
    new devices or an attacker's stock of valid tokens, leaves the cached ones in place."""
    cache = env.registry.cache
    cache.max_entries = 4
    route = env.route({"providers": ["main"]})
    hot = [tok(rsa_key, sub=f"hot{i}") for i in range(3)]
    for t in hot:
        await route.authenticate(request(token=t))
        assert len(cache) == 0 or cache.get(t, NOW) is None  # once: verified, not cached
        await route.authenticate(request(token=t))
        assert cache.get(t, NOW) is not None  # twice: cached
    for i in range(20):
        await route.authenticate(request(token=tok(rsa_key, sub=f"once{i}")))
    assert len(cache) == 3 and all(cache.get(t, NOW) is not None for t in hot)
    assert cache.rejected == 23
    # the window: after max_entries other first sightings a token counts as new again
    late = tok(rsa_key, sub="late")
    await route.authenticate(request(token=late))
    for i in range(4):
        await route.authenticate(request(token=tok(rsa_key, sub=f"gap{i}")))
    await route.authenticate(request(token=late))
    assert cache.get(late, NOW) is None
    await route.authenticate(request(token=late))
    assert cache.get(late, NOW) is not None


async def test_revocation_hook_applies_to_cache_hits(env: Env, rsa_key: Any) -> None:
    route = env.route({"providers": ["main"]})
    t = tok(rsa_key, jti="j-42")
    await route.authenticate(request(token=t))
    revoked: set[str] = set()
    env.registry.set_revocation_check(lambda ident: ident.jti in revoked)
    await route.authenticate(request(token=t))
    revoked.add("j-42")
    req = request(token=t)
    with pytest.raises(InvalidToken):
        await route.authenticate(req)
    assert req.auth_outcome == "revoked"
    assert env.registry.cache.drop_jti("j-42") == 1


async def test_no_usable_keys_is_503(env: Env, rsa_key: Any) -> None:
    env.registry.verifier("main").ring.kill_all()
    req = request(token=tok(rsa_key))
    with pytest.raises(ServiceUnavailable) as info:
        await env.route({"providers": ["main"]}).authenticate(req)
    assert info.value.status == 503 and req.auth_outcome == "keys_unavailable"


async def test_inline_pem_provider(tmp_path: Path, rsa_key: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    env = await make_env([provider_config(tmp_path, keys=[{"pem": pem.decode(), "alg": "RS256"}],
                                          algorithms=["RS256"])])
    assert env.verify(tok(rsa_key)).sub == "alice"  # a lone key without kid matches any kid


async def test_hmac_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = b"s" * 32
    monkeypatch.setenv("WG_TEST_SECRET", secret.decode())
    env = await make_env([provider_config(tmp_path, secret_env="WG_TEST_SECRET",
                                          algorithms=["HS256"])])
    t = sign({"alg": "HS256", "typ": "at+jwt"}, claims(), secret)
    assert env.verify(t).sub == "alice"
    with pytest.raises(Rejected):
        env.verify(sign({"alg": "HS256", "typ": "at+jwt"}, claims(), b"t" * 32))


def test_identity_never_holds_the_token(env: Env, rsa_key: Any) -> None:
    t = tok(rsa_key)
    ident = env.verify(t)
    assert t not in repr(ident).encode() and AUD


@pytest.mark.parametrize("name", ["Host", "Content-Length", "Authorization", "X-Forwarded-For",
                                  "Bad Name", "X-Evil\r\nA"])
def test_identity_header_names_are_checked(env: Env, name: str) -> None:
    with pytest.raises(ValueError, match="cannot carry identity"):
        env.route({"providers": ["main"]}, claims_to_headers={"sub": name})


async def test_check_decides_without_awaiting(env: Env, rsa_key: Any, rsa_other: Any) -> None:
    route = env.route(POLICY)
    req = request(token=tok(rsa_key, scope="orders:read"))
    assert route.check(req) is True and req.auth_outcome == "ok"
    assert route.check(req) is True and env.registry.cache.hits == 0  # admitted now
    assert route.check(req) is True and env.registry.cache.hits == 1
    # a refusal comes back as the error to answer with (not raised: see RouteAuth.check)
    forged = request(token=tok(rsa_other))
    assert isinstance(route.check(forged), InvalidToken) and forged.auth_outcome == "bad_signature"
    narrow = request(token=tok(rsa_key, scope="other"))
    assert isinstance(route.check(narrow), InsufficientScope)
    assert isinstance(route.check(request()), MissingToken)
    unknown = request(token=sign(dict(AT, kid="new"), claims(), rsa_key))
    assert route.check(unknown) is False  # only an unknown kid needs the async path
    with pytest.raises(InvalidToken):
        await route.authenticate(unknown)  # static keys: refetch is a no-op, then 401
    assert unknown.auth_outcome == "unknown_kid"
