"""What every page of the ops console (the SLA board, the funnel, plan and review pages) is
served with: its own origin only (no inline script or style, no framing, forms posting home),
never sniffed, never cached."""

from __future__ import annotations

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
