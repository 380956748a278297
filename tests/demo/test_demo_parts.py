"""The demo's pieces without processes: ports, config rendering, check-config for both kinds
of file, first-run bootstrap, and the printed guide."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from wardgate.cli import main
from wardgate.config.check import file_kind
from wardgate.config.issuer import IssuerConfig
from wardgate.demo import guide
from wardgate.demo.bootstrap import bootstrap, demo_password
from wardgate.demo.settings import Ports, admin_token, examples_dir, prepare
from wardgate.issuer import admin

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_default_ports_are_designs() -> None:
    assert Ports.resolve({}, {}) == Ports(issuer=9000, gateway=8080, admin=8081, orders=9101,
                                          reports=9102)


def test_flags_beat_environment() -> None:
    env = {"WARDGATE_DEMO_GATEWAY_PORT": "18080", "WARDGATE_DEMO_ISSUER_PORT": "19000"}
    ports = Ports.resolve({"gateway": 28080, "issuer": None}, env)
    assert (ports.gateway, ports.issuer, ports.orders) == (28080, 19000, 9101)


@pytest.mark.parametrize("env", [{"WARDGATE_DEMO_ADMIN_PORT": "http"},
                                 {"WARDGATE_DEMO_ADMIN_PORT": "70000"},
                                 {"WARDGATE_DEMO_ADMIN_PORT": "9000"}])  # clashes with issuer
def test_bad_ports_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        Ports.resolve({}, env)


def test_bad_flag_port_is_refused() -> None:
    with pytest.raises(ValueError, match="orders port 0"):
        Ports.resolve({"orders": 0}, {})


def test_examples_are_found_from_the_package() -> None:
    assert examples_dir() == EXAMPLES


def test_prepare_moves_every_port_and_keeps_state_inside(tmp_path: Path) -> None:
    ports = Ports(issuer=19000, gateway=18080, admin=18081, orders=19101, reports=19102)
    files = prepare(tmp_path / ".wardgate", EXAMPLES, ports)
    gw, iss = files.gateway, files.issuer
    assert gw.listen == "127.0.0.1:18080" and gw.admin.listen == "127.0.0.1:18081"
    assert gw.providers[0].issuer == iss.issuer == "http://127.0.0.1:19000"
    assert gw.providers[0].jwks_uri == "http://127.0.0.1:19000/.well-known/jwks.json"
    assert [t.url for u in gw.upstreams for t in u.targets] == ["http://127.0.0.1:19101",
                                                                "http://127.0.0.1:19102"]
    assert iss.listen == "127.0.0.1:19000"
    assert iss.database_url == f"sqlite:///{tmp_path / '.wardgate' / 'issuer.db'}"
    assert iss.keys.dir == str(tmp_path / ".wardgate" / "keys")
    # the comments survive: the generated file is the example, annotated
    assert "# Where clients connect" in files.gateway_yaml.read_text()


def test_check_config_accepts_both_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    assert file_kind(str(EXAMPLES / "gateway.yaml")) == "gateway"
    assert file_kind(str(EXAMPLES / "issuer.yaml")) == "issuer"
    assert main(["check-config", str(EXAMPLES / "gateway.yaml")]) == 0
    assert main(["check-config", str(EXAMPLES / "issuer.yaml")]) == 0
    out = capsys.readouterr().out
    assert "gateway.yaml: OK (3 routes" in out and "issuer.yaml: OK (issuer" in out


def test_check_config_reports_issuer_errors_with_lines(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "issuer.yaml"
    bad.write_text('issuer: "http://127.0.0.1:9000"\ntokens:\n  access_ttl_s: 1\n')
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3: tokens.access_ttl_s" in err and "1 error(s)" in err


def test_check_config_still_judges_gateway_files(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "gw.yaml"
    bad.write_text("listen: '127.0.0.1:8080'\nroutes: []\n")
    assert main(["check-config", str(bad)]) == 1
    assert "upstreams" in capsys.readouterr().err


def test_password_from_environment_or_generated() -> None:
    assert demo_password({"WARDGATE_DEMO_PASSWORD": "x-y"}) == ("x-y", False)
    first, generated = demo_password({})
    assert generated and len(first) >= 16 and first != demo_password({})[0]


async def test_bootstrap_first_run_then_again(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "issuer.yaml", tmp_path / "issuer.yaml")
    cfg = IssuerConfig.model_validate(
        {"database_url": f"sqlite:///{tmp_path / 'issuer.db'}",
         "keys": {"dir": str(tmp_path / "keys")},
         "password_hash": {"time_cost": 1, "memory_cost_kib": 1024, "parallelism": 1},
         "roles": {"admin": ["orders:read"], "user": ["orders:read"]}})
    first = await bootstrap(cfg, {"WARDGATE_DEMO_PASSWORD": "one"})
    assert first.new_key is not None and first.signing_key == first.new_key
    assert first.created_users == ("alice", "bob") and first.password == "one"
    again = await bootstrap(cfg, {})
    assert again.new_key is None and again.signing_key == first.signing_key
    assert again.created_users == () and again.password_generated
    users = {u.username: u.roles for u in await admin.list_users(cfg)}
    assert users == {"alice": ("admin",), "bob": ("user",)}
    assert len(await admin.list_keys(cfg)) == 1


async def test_bootstrap_dpop_client_secret_is_set_again(tmp_path: Path) -> None:
    from wardgate.issuer import clients
    from wardgate.issuer.db import open_database

    cfg = IssuerConfig.model_validate(
        {"database_url": f"sqlite:///{tmp_path / 'issuer.db'}",
         "keys": {"dir": str(tmp_path / "keys")},
         "password_hash": {"time_cost": 1, "memory_cost_kib": 1024, "parallelism": 1},
         "roles": {"admin": ["orders:read"], "user": ["orders:read"]}})
    s1, s2 = "a" * 40, "b" * 40
    await bootstrap(cfg, {"WARDGATE_DEMO_PASSWORD": "one"}, dpop_secret=s1)
    await bootstrap(cfg, {"WARDGATE_DEMO_PASSWORD": "one"}, dpop_secret=s2)
    db = await open_database(cfg.database_url)
    try:
        async with db.begin() as conn:
            client = await clients.get_client(conn, "demo-dpop")
    finally:
        await db.close()
    assert client is not None and client.dpop_bound
    assert client.grant_types == ("client_credentials",)
    assert client.secret_matches(s2) and not client.secret_matches(s1)
    assert not await admin.set_client_secret(cfg, "no-such-client", s1)


def test_guide_covers_every_outcome() -> None:
    ports = Ports(gateway=18080)
    text = guide.render(ports, "pw", generated=True, state="/s", logs="/s/logs", new_key="k1")
    for needle in ("http://127.0.0.1:18080/orders", "http://127.0.0.1:9000/login",
                   "/reports", "grant_type=refresh_token", "/revoke", "generated signing key k1",
                   "WARDGATE_DEMO_PASSWORD", "Ctrl-C"):
        assert needle in text
    assert "reserved for the gateway's admin API" in text
    up = guide.render(ports, "pw", generated=False, state="/s", logs="/l", new_key=None,
                      admin_up=True)
    assert "admin     http://127.0.0.1:8081" in up and "from WARDGATE_DEMO_PASSWORD" in up
    expects = " ".join(s.expect for s in guide.steps(ports, "pw"))
    for outcome in ("200", "401", "403", "invalid_grant"):
        assert outcome in expects


def test_admin_token_is_generated_0600_and_reused(tmp_path: Path) -> None:
    token, path = admin_token(tmp_path)
    assert len(token) >= 40 and path == tmp_path / "admin-token"
    assert path.stat().st_mode & 0o777 == 0o600
    assert admin_token(tmp_path) == (token, path)  # the next run keeps it
    path.chmod(0o644)
    assert admin_token(tmp_path)[0] == token and path.stat().st_mode & 0o777 == 0o600
    path.write_text("\n")  # emptied: a new one
    again, _ = admin_token(tmp_path)
    assert again != token and len(again) >= 40


def test_guide_shows_the_dashboard_token_and_status() -> None:
    access = guide.AdminAccess("tok-123", "/s/admin-token", "/s/gateway.yaml", "wardgate")
    text = guide.render(Ports(admin=18081), "pw", generated=True, state="/s", logs="/s/logs",
                        new_key=None, admin_up=True, admin=access)
    assert "  dashboard http://127.0.0.1:18081/" in text
    assert "  admin token  tok-123   (in /s/admin-token, mode 0600)" in text
    assert "wardgate status --config /s/gateway.yaml --token-file /s/admin-token" in text
