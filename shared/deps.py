"""FastAPI dependencies that every service's routers share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from shared.runtime import Runtime


async def runtime_of(request: Request) -> Runtime:
    """The app's runtime (its settings, sessions, producer). ``async``: FastAPI runs a plain
    ``def`` dependency in its thread pool, a thread hop on every request."""
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
