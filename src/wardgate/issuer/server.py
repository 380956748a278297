"""Run the issuer under uvicorn (one process; the database is the shared state)."""

from __future__ import annotations

import uvicorn

from wardgate.config.common import parse_hostport
from wardgate.config.issuer import IssuerConfig
from wardgate.issuer.app import create_app


def serve(cfg: IssuerConfig, *, log_level: str = "info") -> None:
    host, port = parse_hostport(cfg.listen, 9000)
    config = uvicorn.Config(create_app(cfg), host=host, port=port, log_level=log_level,
                            access_log=False, server_header=False, proxy_headers=False,
                            h11_max_incomplete_event_size=16 * 1024)
    uvicorn.Server(config).run()
