"""What every page of the ops console (the SLA board, the funnel, plan and review pages) is
served with: its own origin only (no inline script or style, no framing, forms posting home),
never sniffed, never cached.

``SecurityHeaders`` makes the same policy the default of every HTML answer of an app (its docs,
pages added later): a page that sets its own header keeps it."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
HTML_DEFAULTS = {
    "Content-Security-Policy": PAGE_CSP,
    "Referrer-Policy": "same-origin",
    # For browsers without CSP's frame-ancestors, and for pages whose own policy leaves it out.
    "X-Frame-Options": "DENY",
}


class SecurityHeaders:
    """ASGI middleware: ``nosniff`` on every answer (a JSON body that echoes a lead's fields
    must never be taken for HTML), and ``HTML_DEFAULTS`` on every ``text/html`` answer that does
    not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_defaults(MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_defaults(headers: MutableHeaders) -> None:
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if headers.get("content-type", "").startswith("text/html"):
        for name, value in HTML_DEFAULTS.items():
            headers.setdefault(name, value)
