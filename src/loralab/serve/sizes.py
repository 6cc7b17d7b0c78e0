"""Limits on a request body enforced while it streams in, before FastAPI parses it: its size
(by Content-Length, and as counted) and the time it may take to arrive."""

from __future__ import annotations

import asyncio
import json

from loralab.serve.inputs import ApiError
from loralab.serve.limits import MB, ServeLimits


class BodyGuard:
    """Pure ASGI middleware: 413 for a body over the limit, 408 for one that does not arrive in time.

    Both are :class:`ApiError` raised from ``receive``: FastAPI passes HTTP exceptions raised
    while it reads the body on to the app's handlers, which answer the usual JSON error. A body
    declared too large is refused before anything is read.
    """

    def __init__(self, app, limits: ServeLimits):
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        limit = self.limits.request_bytes(batch=scope.get("path", "").endswith("/batch"))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await self._refuse(send, self._too_large(int(declared), limit))
        deadline = asyncio.get_running_loop().time() + self.limits.read_timeout_s
        seen, more = 0, True

        async def guarded_receive():
            nonlocal seen, more
            if not more:  # the body is in: what follows is the wait for a disconnect, not bounded
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                raise ApiError(408, "request_timeout", f"the request body did not arrive within "
                               f"{self.limits.read_timeout_s:g} s; send it whole") from None  # fmt: skip
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                more = message.get("more_body", False)
                if seen > limit:
                    raise self._too_large(seen, limit)
            return message

        await self.app(scope, guarded_receive, send)

    def _too_large(self, size: int, limit: int) -> ApiError:
        return ApiError(413, "request_too_large", f"the request body is over {size / MB:.1f} MB; the limit "
                        f"is {limit / MB:.1f} MB (each recording at most {self.limits.max_upload_bytes / MB:g} MB)",
                        {"Connection": "close"})  # fmt: skip

    @staticmethod
    async def _refuse(send, error: ApiError) -> None:
        body = json.dumps(error.payload()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]  # fmt: skip
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
