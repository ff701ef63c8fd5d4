"""Identifiers: time-ordered UUIDs (version 7), so new rows land at the right edge of an index."""

from uuid import UUID, SafeUUID

from uuid_utils import uuid7

_UNKNOWN = SafeUUID.unknown
_new = object.__new__
_set = object.__setattr__


def new_id() -> UUID:
    """A standard-library ``UUID`` from uuid-utils' generator, built the way ``UUID`` builds
    itself (uuid_utils.compat does the same, but looks the enum member up on every call)."""
    value = _new(UUID)
    _set(value, "int", uuid7().int)
    _set(value, "is_safe", _UNKNOWN)
    return value
