"""How every Leadflow HTTP app is made (the public app, each service's health app): FastAPI's
CDN docs pages off, ours on (``shared/docs.py``), and the security headers' defaults on every
answer (``shared/pages.py``)."""

from __future__ import annotations

from fastapi import FastAPI

from shared.docs import install_docs
from shared.pages import SecurityHeaders


def new_app(title: str, *, description: str = "") -> FastAPI:
    app = FastAPI(
        title=title,
        version="0.1.0",
        description=description,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,  # no OAuth2 here: API keys and bearer keys
    )
    # Added first, so innermost: it sees the answers of every route and exception handler
    # (not those of middleware added later, such as the body limit's, which are JSON).
    app.add_middleware(SecurityHeaders)
    install_docs(app)
    return app
