"""The issuer's ASGI application: routes, the one error renderer, start/stop of resources."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from wardgate.config.issuer import IssuerConfig
from wardgate.issuer import (
    dpopjs,
    errors,
    limits,
    routes_authorize,
    routes_end_session,
    routes_login,
    routes_meta,
    routes_revocations,
    routes_token,
)
from wardgate.issuer.limits import BodyLimit
from wardgate.issuer.service import Issuer

log = logging.getLogger("wardgate.issuer")


class IssuerApp(FastAPI):
    """FastAPI, with POST /token answered ahead of its middleware stack.

    The token endpoint reads its own form and needs none of the per-request machinery the
    stack adds around every route (the telemetry probe, two body-limit layers, the exception
    middlewares' wrappers, the exit stack, route matching): for a refresh grant that was a
    tenth of its CPU. `_token` applies the same size limit and the app's own exception
    handlers, so answers and errors are those of the stack. With FastAPI's native telemetry
    configured (an OpenTelemetry provider), every request takes the full stack.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["path"] == "/token" and scope["method"] == "POST"
                and not self.root_path and not self._native_telemetry.enabled()):
            await self._token(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def _token(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        request = Request(scope, receive, send)
        try:
            response = (limits.too_large(scope, self.state.issuer.cfg.limits.max_body_bytes)
                        or await routes_token.token(request))
        except Exception as exc:
            for cls in type(exc).__mro__:
                handler = self.exception_handlers.get(cls)
                if handler is not None:
                    break
            else:
                raise
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
            if cls is Exception:
                # As Starlette's ServerErrorMiddleware: answer 500, then let the server see it.
                await response(scope, receive, send)
                raise
        await response(scope, receive, send)


def create_app(cfg: IssuerConfig, *, clock: Callable[[], float] = time.time) -> FastAPI:
    issuer = Issuer(cfg, clock=clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await issuer.start()
        try:
            yield
        finally:
            await issuer.stop()

    app = IssuerApp(title="wardgate issuer", version="1", lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.issuer = issuer
    # First, ahead of the FastAPI routes: the token endpoint as a plain Starlette route
    # (`routes_token.token`); the FastAPI route of the same path only documents it.
    app.add_route("/token", routes_token.token, methods=["POST"], include_in_schema=False)
    # the browser-side DPoP helper for cookie-mode pages (docs/issuer.md)
    app.add_route("/dpop.js", dpopjs.dpop_js, methods=["GET"], include_in_schema=False)
    for r in (routes_meta.router, routes_login.router, routes_token.router,
              routes_authorize.router, routes_end_session.router, routes_revocations.router):
        app.include_router(r)
    app.add_middleware(BodyLimit, max_bytes=cfg.limits.max_body_bytes)
    _install_error_handlers(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    """Typed exceptions become responses here and nowhere else."""

    async def on_issuer_error(_r: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.IssuerError)
        return errors.render(exc)

    async def on_validation(_r: Request, _exc: Exception) -> Response:
        return errors.render(errors.InvalidRequest("malformed request"))

    async def on_http(_r: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            return errors.render(errors.MethodNotAllowed("method not allowed"))
        if exc.status_code == 404:
            return errors.render(errors.NotFound("no such endpoint"))
        err = errors.InvalidRequest(str(exc.detail))
        err.status = exc.status_code if 400 <= exc.status_code < 500 else 400
        return errors.render(err)

    async def on_db(_r: Request, exc: Exception) -> Response:
        log.error("database error: %s", type(exc).__name__)
        return errors.render(errors.TemporarilyUnavailable("database unavailable"))

    async def on_unexpected(_r: Request, exc: Exception) -> Response:
        log.exception("unexpected error", exc_info=exc)
        return errors.render(errors.IssuerError("internal error"))

    app.add_exception_handler(errors.IssuerError, on_issuer_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(DBAPIError, on_db)
    # A database that cannot be reached fails the pool's connect with a bare OSError
    # (ConnectionRefusedError, a reset, a connect timeout): SQLAlchemy wraps driver errors,
    # not the socket's. Requests do no other socket or file I/O, so this is the database too.
    app.add_exception_handler(OSError, on_db)
    app.add_exception_handler(Exception, on_unexpected)
