"""The dashboard at ``/``: a page and its script, stylesheet and chart library, all served by the service.

Nothing comes from another host, so the dashboard works on a bench PC's network without one. The page
itself holds no lab data and needs no token: its script asks for a token, keeps it in the browser tab
(``sessionStorage``) and sends it as the bearer header on every API call, so the dashboard's requests are
checked exactly like any other client's. The page's Content-Security-Policy allows scripts, styles,
connections and frames only from the service itself (and blob URLs, through which the script shows the
artifacts it fetched with the token), which also keeps the browser from reaching any other host.

Chart library: uPlot (MIT, ``static/vendor/uplot``), a 50 kB canvas time-series chart that redraws
thousands of points in a millisecond; plots of finished runs are the service's own PNGs.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")
ASSETS_PATH = "/ui"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",  # element styles set by the script and the report's own sheet
        "img-src 'self' blob: data:",
        "frame-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def install(app: FastAPI) -> None:
    """Serve the dashboard page at ``/`` and its assets under ``/ui`` (neither is part of the API document)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=STATIC), name="dashboard-assets")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)
