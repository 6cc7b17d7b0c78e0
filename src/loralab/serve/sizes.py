"""A request-body size limit enforced while the body streams in (before any parsing)."""

from __future__ import annotations

import json

from loralab.serve.limits import MB, ServeLimits


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    """Pure ASGI middleware: 413 (JSON) for a body over the limit, by Content-Length or as counted."""

    def __init__(self, app, limits: ServeLimits):
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        limit = self.limits.request_bytes(batch=scope.get("path", "").endswith("/batch"))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await self._refuse(send, int(declared), limit)
        seen = 0
        started = False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge()
            return message

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await self._refuse(send, seen, limit)

    async def _refuse(self, send, size: int, limit: int) -> None:
        message = (f"the request body is over {size / MB:.1f} MB; the limit is {limit / MB:.1f} MB "
                   f"(each recording at most {self.limits.max_upload_bytes / MB:g} MB)")  # fmt: skip
        body = json.dumps(
            {"error": {"code": "request_too_large", "message": message, "status": 413}}
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]  # fmt: skip
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
