"""What the demo prints once everything is ready: where things are, and what to try.

The steps are data (title, expected outcome, shell lines) so the text, docs/demo.md and the
end-to-end test all follow the same list. The shell lines are real: pasted into bash in order,
each does what its title says.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from wardgate.demo.settings import Ports

# Pull one field out of a JSON answer without needing jq (python3 is there, we run on it).
_FIELD = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"{field}\"])'"


# -s: no progress meter; -i: show the status line and headers; -w: end the body with a newline
_CURL = "curl -si -w '\\n'"


@dataclass(frozen=True)
class AdminAccess:
    """How to reach the gateway's admin listener: its token and where the files are."""

    token: str
    token_file: str
    gateway_yaml: str
    command: str = "wardgate"  # how this shell reaches the CLI (a venv's bin may not be on PATH)


@dataclass(frozen=True)
class DpopDemo:
    """What the DPoP steps need: the CLI, the demo client's secret file, a key file path."""

    command: str
    secret_file: str
    key_file: str
    client_id: str = "demo-dpop"


@dataclass(frozen=True)
class Step:
    title: str
    expect: str
    lines: tuple[str, ...]


def _get(field: str) -> str:
    return _FIELD.format(field=field)


def dpop_steps(ports: Ports, d: DpopDemo) -> list[Step]:
    iss, gw = ports.url("issuer"), ports.url("gateway")
    key, cmd = shlex.quote(d.key_file), d.command
    secret = shlex.quote(d.secret_file)

    def proof(method: str, url: str, token: str = "") -> str:
        return f"$({cmd} dpop proof --key {key} --method {method} --url {url}{token})"

    return [
        Step(f"DPoP: make a key, then get a token bound to it for the {d.client_id} client",
             "the key's thumbprint; then 200 with token_type DPoP (the client must use DPoP)",
             (f"{cmd} dpop keygen --out {key} --force",
              f'DPOP=$(curl -s -X POST {iss}/token -u "{d.client_id}:$(cat {secret})" '
              f'-d grant_type=client_credentials -H "DPoP: {proof("POST", iss + "/token")}")',
              'echo "$DPOP"',
              f'DPOP_TOKEN=$(echo "$DPOP" | {_get("access_token")})')),
        Step("Call /dpop (DPoP required) with the token and a fresh proof for this request",
             "200 from the reports service's /whoami",
             (f'{_CURL} {gw}/dpop -H "Authorization: DPoP $DPOP_TOKEN" '
              f'-H "DPoP: {proof("GET", gw + "/dpop", " --token $DPOP_TOKEN")}"',)),
        Step("The same token as a plain Bearer token",
             "401, WWW-Authenticate: DPoP ... error=\"invalid_token\" (a stolen bound token "
             "is useless without the key)",
             (f'{_CURL} {gw}/dpop -H "Authorization: Bearer $DPOP_TOKEN"',)),
    ]


def steps(ports: Ports, password: str, login_client: str = "wardgate-login",
          dpop: DpopDemo | None = None) -> list[Step]:
    iss, gw = ports.url("issuer"), ports.url("gateway")

    def login(user: str, var: str) -> str:
        return (f"{var}=$(curl -s -X POST {iss}/login -H 'Content-Type: application/json' "
                f"-d '{{\"username\": \"{user}\", \"password\": \"{password}\"}}')")

    return [
        Step("Sign in as alice (role admin); keep her access and refresh tokens",
             "200 with access_token, refresh_token, token_type Bearer, expires_in",
             (login("alice", "ALICE"),
              f'ACCESS=$(echo "$ALICE" | {_get("access_token")})',
              f'REFRESH=$(echo "$ALICE" | {_get("refresh_token")})')),
        Step("Call /orders through the gateway with her token",
             "200: the orders service verified the token itself (zero trust)",
             (f'{_CURL} {gw}/orders -H "Authorization: Bearer $ACCESS"',)),
        Step("Call /orders without a token, then with a forged one",
             "401, WWW-Authenticate: Bearer ... (then error=\"invalid_token\")",
             (f"{_CURL} {gw}/orders",
              f'{_CURL} {gw}/orders -H "Authorization: Bearer ${{ACCESS%?????}}xxxxx"')),
        Step("Sign in as bob (role user) and ask for /reports, which needs role admin",
             "403, WWW-Authenticate: Bearer error=\"insufficient_scope\" (alice gets 200)",
             (login("bob", "BOB"),
              f'BOB_ACCESS=$(echo "$BOB" | {_get("access_token")})',
              f'{_CURL} {gw}/reports -H "Authorization: Bearer $BOB_ACCESS"',
              f'{_CURL} {gw}/reports -H "Authorization: Bearer $ACCESS"')),
        Step("Refresh: trade alice's refresh token for new tokens (the old one is now spent)",
             "200 with a new access_token and a new refresh_token",
             (f"NEW=$(curl -s -X POST {iss}/token -d grant_type=refresh_token "
              f'-d "refresh_token=$REFRESH")',
              'echo "$NEW"',
              f'REFRESH=$(echo "$NEW" | {_get("refresh_token")})')),
        Step("Revoke the new refresh token, then try to use it",
             "revoke: 200; refresh: 400 error \"invalid_grant\"",
             (f'{_CURL} -X POST {iss}/revoke -d client_id={login_client} -d "token=$REFRESH"',
              f"{_CURL} -X POST {iss}/token -d grant_type=refresh_token "
              f'-d "refresh_token=$REFRESH"')),
    ] + (dpop_steps(ports, dpop) if dpop is not None else [])


def render(ports: Ports, password: str, *, generated: bool, state: str, logs: str,
           new_key: str | None, admin_up: bool = False,
           admin: AdminAccess | None = None, dpop: DpopDemo | None = None) -> str:
    iss, gw = ports.url("issuer"), ports.url("gateway")
    pw_note = ("generated for this run; set WARDGATE_DEMO_PASSWORD to choose one" if generated
               else "from WARDGATE_DEMO_PASSWORD")
    out = [
        "",
        "wardgate demo is ready.",
        "",
        f"  gateway   {gw}",
        # the admin API (metrics, dashboard) is its own port; say so only when it answers
        (f"  admin     {ports.url('admin')}   (gateway admin API)" if admin_up else
         f"  admin     127.0.0.1:{ports.admin}   (reserved for the gateway's admin API)"),
        f"  issuer    {iss}   (discovery: {iss}/.well-known/openid-configuration)",
        f"  orders    {ports.url('orders')}   behind {gw}/orders  (any signed-in user)",
        f"  reports   {ports.url('reports')}   behind {gw}/reports (role admin only)"
        f" and {gw}/dpop (DPoP-bound tokens only)",
        f"  state     {state}   logs: {logs}",
    ]
    if new_key:
        out.append(f"  keys      generated signing key {new_key} (first run)")
    if admin is not None:
        tf, gy = shlex.quote(admin.token_file), shlex.quote(admin.gateway_yaml)
        out += [
            "",
            f"  dashboard {ports.url('admin')}/   (sign in with the admin token)",
            f"  admin token  {admin.token}   (in {admin.token_file}, mode 0600)",
            f"  status    {admin.command} status --config {gy} --token-file {tf}",
            f"  metrics   curl -s {ports.url('admin')}/metrics ;  "
            f"curl -s -H \"Authorization: Bearer $(cat {tf})\" "
            f"{ports.url('admin')}/admin/summary",
        ]
    out += [
        "",
        "  users     alice (role admin), bob (role user)",
        f"  password  {password}   ({pw_note})",
        "",
        "Try it (paste into bash, in order):",
    ]
    for n, step in enumerate(steps(ports, password, dpop=dpop), 1):
        out.append("")
        out.append(f"  {n}. {step.title}")
        out.append(f"     expect: {step.expect}")
        out += [f"     {line}" for line in step.lines]
    out += ["", "Press Ctrl-C to stop everything.", ""]
    return "\n".join(out)
