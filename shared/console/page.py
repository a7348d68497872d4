"""The console's static files and the headers they are served with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).parent / "static"
PAGE = "index.html"

# Only these files are served, whatever the route asks for: no path from the request
# ever reaches the file system.
ASSETS = {
    "console.js": "text/javascript",
    "console.css": "text/css",
    "favicon.svg": "image/svg+xml",
}

# No inline script or style, nothing from elsewhere, never framed (clickjacking the
# "run now" and "cancel" buttons), no form posted anywhere.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str


def security_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        # Files are read at request time: a deployment's new page is seen on the next load.
        "Cache-Control": "no-cache",
    }


def console_page() -> StaticFile:
    return StaticFile((STATIC / PAGE).read_bytes(), "text/html")


def console_asset(name: str) -> StaticFile | None:
    """The asset called `name`, or None when the console has no such file."""
    content_type = ASSETS.get(name)
    if content_type is None:
        return None
    return StaticFile((STATIC / name).read_bytes(), content_type)
