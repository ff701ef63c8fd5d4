from uuid import UUID

from shared.ids import new_id


def test_new_ids_are_standard_time_ordered_uuids() -> None:
    ids = [new_id() for _ in range(1000)]
    assert all(
        type(i) is UUID and i.version == 7 and i.variant == "specified in RFC 4122" for i in ids
    )
    assert ids == sorted(ids)  # time-ordered (monotonic within a millisecond too)
    assert len(set(ids)) == 1000
    assert all(UUID(str(i)) == i and hash(UUID(str(i))) == hash(i) for i in ids)
