"""The API's description: FastAPI's OpenAPI schema at ``/openapi.json`` and its Swagger UI page
at ``/docs``, served whole by the app (no CDN: the page renders offline).

The viewer's script and style come from the ``swagger-ui-bundle`` package, mounted at
``/docs/assets``. That package ships Swagger UI 4, which reads OpenAPI 3.0 only, while FastAPI
writes 3.1; so the page loads ``/docs/openapi-3.0.json``, the same description written in 3.0
terms (:func:`as_openapi_30`), and ``/openapi.json`` stays FastAPI's own.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"
VIEWER_SCHEMA = "/docs/openapi-3.0.json"


def merged_openapi(app: FastAPI, shared: Sequence[APIRoute]) -> dict[str, Any]:
    """FastAPI's schema of ``app``, where the ``shared`` routes, which share paths and methods
    (multipart and JSON), make one operation per path listing every body (FastAPI alone keeps
    the last route's)."""
    if app.openapi_schema is None:
        meta = {"title": app.title, "version": app.version}
        spec = get_openapi(**meta, description=app.description, routes=app.routes)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for route in shared:
            part = get_openapi(**meta, routes=[route])
            for method, operation in part["paths"][route.path_format].items():
                target = spec["paths"][route.path_format][method]
                target["requestBody"]["content"].update(operation["requestBody"]["content"])
            for name, schema in part.get("components", {}).get("schemas", {}).items():
                schemas.setdefault(name, schema)
        app.openapi_schema = spec
    return app.openapi_schema


def _schema_30(node: Any) -> Any:
    """A JSON Schema (2020-12, as OpenAPI 3.1 has it) in OpenAPI 3.0's dialect."""
    if isinstance(node, list):
        return [_schema_30(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _schema_30(v) for k, v in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:  # Optional[X]: X, nullable
        rest = [o for o in options if o != {"type": "null"}]
        node.pop("anyOf")
        node.update(rest[0] if len(rest) == 1 and "$ref" not in rest[0] else {"anyOf": rest})
        node["nullable"] = True
    if node.get("contentMediaType") == "application/octet-stream":  # a file part
        node.pop("contentMediaType")
        node["format"] = "binary"
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if isinstance(node.get("examples"), list) and node["examples"]:
        node["example"] = node.pop("examples")[0]
    return node


def as_openapi_30(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` (OpenAPI 3.1) with its schemas written as OpenAPI 3.0 has them, for Swagger UI 4."""
    out = copy.deepcopy(spec)
    out["openapi"] = "3.0.3"
    out["components"]["schemas"] = _schema_30(out["components"]["schemas"])
    for item in out["paths"].values():
        for operation in item.values():
            for medium in operation.get("requestBody", {}).get("content", {}).values():
                medium["schema"] = _schema_30(medium["schema"])
            for response in operation.get("responses", {}).values():
                for medium in response.get("content", {}).values():
                    medium["schema"] = _schema_30(medium.get("schema", {}))
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _schema_30(parameter.get("schema", {}))
    return out


def install_docs(app: FastAPI, shared: Sequence[APIRoute]) -> None:
    """``/docs`` (Swagger UI from the installed package) and its schema (``shared``: as for
    :func:`merged_openapi`); ``app`` is made with ``docs_url=None, redoc_url=None`` (FastAPI's
    own pages load their script from a CDN)."""
    from swagger_ui_bundle import swagger_ui_path

    app.openapi = lambda: merged_openapi(app, shared)
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request):
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(openapi_url=root + VIEWER_SCHEMA, title=f"{app.title} - API",
                                   swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png")  # fmt: skip

    @app.get(VIEWER_SCHEMA, include_in_schema=False)
    async def viewer_schema():
        return JSONResponse(as_openapi_30(app.openapi()))
