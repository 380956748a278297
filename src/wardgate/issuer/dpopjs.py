"""`GET /dpop.js`: DPoP (RFC 9449) for a browser page that uses cookie-mode login.

The page gets `window.WardgateDpop`: a non-extractable ECDSA P-256 key made with WebCrypto
and kept in IndexedDB (script can sign with it; nobody can read it out), a fresh proof per
request, and `login` / `refresh` / `fetch` helpers. The access token stays in its HttpOnly
cookie: the cookie-mode answer carries only its hash (`ath`), which the proofs need.
Threat model: docs/security.md "DPoP in a browser". Same origin as the issuer's `/login`
(`htu` is the issuer's public URL), so in practice the issuer and the API sit behind one
gateway origin. Tests: tests/dpop/test_browser_dpop.py (real Chromium).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

SCRIPT = r"""// wardgate DPoP for browser pages (RFC 9449). Served by the issuer at /dpop.js.
(function (global) {
  "use strict";
  var DB = "wardgate-dpop", STORE = "keys", ID = "default", STATE = "wardgate-dpop";
  var SAFE = ["GET", "HEAD", "OPTIONS", "TRACE"];
  var enc = new TextEncoder();
  var pending = null;
  var nonces = {};  // origin -> the last DPoP-Nonce it sent (RFC 9449 §8.2: use it next time)

  function b64url(buf) {
    var bytes = new Uint8Array(buf), s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function openDb() {
    return new Promise(function (resolve, reject) {
      var r = indexedDB.open(DB, 1);
      r.onupgradeneeded = function () { r.result.createObjectStore(STORE); };
      r.onsuccess = function () { resolve(r.result); };
      r.onerror = function () { reject(r.error); };
    });
  }
  function store(db, mode, op) {
    return new Promise(function (resolve, reject) {
      var tx = db.transaction(STORE, mode), req = op(tx.objectStore(STORE));
      tx.oncomplete = function () { resolve(req.result); };
      tx.onerror = function () { reject(tx.error); };
    });
  }
  // The key pair: made once (extractable: false), kept in IndexedDB across reloads.
  function key() {
    if (pending === null) {
      pending = (async function () {
        var db = await openDb();
        var pair = await store(db, "readonly", function (s) { return s.get(ID); });
        if (!pair) {
          pair = await crypto.subtle.generateKey({name: "ECDSA", namedCurve: "P-256"}, false,
                                                 ["sign", "verify"]);
          await store(db, "readwrite", function (s) { return s.put(pair, ID); });
        }
        var jwk = await crypto.subtle.exportKey("jwk", pair.publicKey);
        // RFC 7638: the required members in lexical order (crv, kty, x, y)
        var pub = {crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y};
        var jkt = b64url(await crypto.subtle.digest("SHA-256", enc.encode(JSON.stringify(pub))));
        var head = b64url(enc.encode(JSON.stringify({typ: "dpop+jwt", alg: "ES256", jwk: pub})));
        return {privateKey: pair.privateKey, jkt: jkt, head: head};
      })();
      pending.catch(function () { pending = null; });
    }
    return pending;
  }
  // RFC 9449 §4.2: htm, htu (no query, no fragment), iat, a fresh jti; ath and nonce if given.
  async function proof(method, url, ath, nonce) {
    var k = await key();
    var u = new URL(url, global.location.href);
    u.search = ""; u.hash = "";
    var claims = {jti: b64url(crypto.getRandomValues(new Uint8Array(16))), htm: method,
                  htu: u.href, iat: Math.floor(Date.now() / 1000)};
    if (ath) claims.ath = ath;
    if (nonce) claims.nonce = nonce;
    var input = k.head + "." + b64url(enc.encode(JSON.stringify(claims)));
    // WebCrypto's ECDSA signature is R || S already (RFC 7518 §3.4)
    var sig = await crypto.subtle.sign({name: "ECDSA", hash: "SHA-256"}, k.privateKey,
                                       enc.encode(input));
    return input + "." + b64url(sig);
  }
  function state() {
    try { return JSON.parse(global.sessionStorage.getItem(STATE) || "{}"); }
    catch (e) { return {}; }
  }
  function remember(body) {
    global.sessionStorage.setItem(STATE, JSON.stringify({ath: body.ath, csrf: body.csrf_token}));
  }
  // The origin's last nonce goes into the proof; when the server refuses the proof and
  // names a new nonce (RFC 9449 §8/§9: use_dpop_nonce + DPoP-Nonce), one retry with it.
  async function send(url, init, ath) {
    var method = (init.method || "GET").toUpperCase(), r = null;
    var origin = new URL(url, global.location.href).origin;
    for (var attempt = 0; attempt < 2; attempt++) {
      var used = nonces[origin] || null;
      var headers = new Headers(init.headers || {});
      headers.set("DPoP", await proof(method, url, ath, used));
      r = await fetch(url, Object.assign({}, init, {method: method, headers: headers,
                                                     credentials: init.credentials || "same-origin"}));
      var fresh = r.headers.get("DPoP-Nonce");
      if (fresh) nonces[origin] = fresh;
      if (!fresh || fresh === used || (r.status !== 400 && r.status !== 401)) break;
    }
    return r;
  }
  async function login(username, password, url) {
    var r = await send(url || "/login", {method: "POST", body: JSON.stringify(
      {username: username, password: password, mode: "cookie"}),
      headers: {"Content-Type": "application/json"}}, null);
    var body = await r.json();
    if (r.ok) remember(body);
    return {status: r.status, body: body};
  }
  async function refresh(url) {
    var r = await send(url || "/session/refresh", {method: "POST",
      headers: {"X-CSRF-Token": state().csrf || ""}}, null);
    var body = await r.json();
    if (r.ok) remember(body);
    return {status: r.status, body: body};
  }
  // fetch() with a fresh proof over the access cookie's token (and the CSRF header on
  // unsafe methods); the cookie itself goes as the browser sends it.
  function dpopFetch(url, init) {
    init = Object.assign({}, init || {});
    var st = state(), method = (init.method || "GET").toUpperCase();
    if (SAFE.indexOf(method) < 0 && st.csrf) {
      var h = new Headers(init.headers || {});
      h.set("X-CSRF-Token", st.csrf);
      init.headers = h;
    }
    return send(url, init, st.ath);
  }
  async function forget() {
    var db = await openDb();
    await store(db, "readwrite", function (s) { return s.delete(ID); });
    pending = null;
    global.sessionStorage.removeItem(STATE);
  }
  global.WardgateDpop = {
    thumbprint: async function () { return (await key()).jkt; },
    proof: proof, login: login, refresh: refresh, fetch: dpopFetch, forget: forget
  };
})(window);
"""


async def dpop_js(request: Request) -> Response:
    return Response(SCRIPT, media_type="text/javascript", headers={
        "Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})
