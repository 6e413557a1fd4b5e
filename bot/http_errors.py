"""Requests aiohttp refuses before any handler runs (a request line or header too long, a NUL byte in a
header, a malformed start line) answer with the API's `Error` JSON instead of aiohttp's plain text, and are
logged as one WARNING line without a traceback: they are the client's fault, not ours.

aiohttp builds those answers in `RequestHandler.handle_error`, which no middleware sees (the request never
reaches the application). `web.Server` instantiates `RequestHandler` itself, so `ApiRunner` hands the
sites a `web.Server` whose protocol factory builds `JsonErrorHandler`s instead.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

log = logging.getLogger(__name__)


class JsonErrorHandler(RequestHandler):  # type: ignore[type-arg]
    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            # A bug of ours escaped a handler: keep the traceback, still answer in the API's format.
            log.error("error handling %s %s", request.method, request.path, exc_info=exc)
            error = "internal error; nothing was changed"
        else:
            reason = str(exc) if exc is not None else (message or HTTPStatus(status).phrase)
            reason = reason.splitlines()[0][:200] if reason else HTTPStatus(status).phrase
            log.warning("bad HTTP request from %s refused (%d): %s", request.remote, status, reason)
            error = f"bad HTTP request: {reason}"
        if request.writer.output_size > 0:  # as aiohttp does: an answer has begun, the connection is broken
            raise ConnectionError("response already started; cannot send the error")
        response = web.json_response({"error": error}, status=status)
        response.force_close()
        return response


class JsonErrorServer(web.Server):  # type: ignore[misc]
    def __call__(self) -> RequestHandler:  # type: ignore[type-arg]
        return JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """web.AppRunner whose connections answer protocol errors with JSON (see the module's docstring)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = JsonErrorServer  # same state, one method more; web.Server takes no handler class
        return server
