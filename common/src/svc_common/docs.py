"""/docs, /redoc and /openapi.json with Swagger UI and ReDoc served by the service itself."""

from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

# Swagger UI and ReDoc builds shipped inside the fastapi-offline wheel: no CDN, no internet.
ASSETS_DIR = str(files("fastapi_offline") / "static")
ASSETS_PREFIX = "/docs/assets"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
OPENAPI_URL = "/openapi.json"
# Paths a forwarding service must keep for itself so its own docs render.
DOCS_PATHS = frozenset({"/docs", OAUTH2_REDIRECT, OPENAPI_URL, "/redoc"})

OpenAPIProvider = Callable[[FastAPI], Awaitable[dict[str, Any]]]


def is_docs_path(path: str) -> bool:
    """The pages, schema and assets of the docs."""
    return path in DOCS_PATHS or path.startswith(ASSETS_PREFIX + "/")


def install_docs(app: FastAPI, *, openapi: OpenAPIProvider | None = None) -> None:
    """Mount the docs; `openapi` replaces the app's own schema (the gateway merges upstream's)."""
    app.mount(ASSETS_PREFIX, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    async def own_schema(app: FastAPI) -> dict[str, Any]:
        return app.openapi()

    provider = openapi or own_schema

    @app.get(OPENAPI_URL, include_in_schema=False)
    async def openapi_json() -> JSONResponse:
        return JSONResponse(await provider(app))

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=OAUTH2_REDIRECT,
            swagger_js_url=f"{ASSETS_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PREFIX}/favicon.png",
            # validatorUrl=None: Swagger UI would otherwise send the schema to a public validator.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PREFIX}/favicon.png",
            with_google_fonts=False,
        )
