"""A clock started in a batch is a plain row inserted by column name: it must name every column
of ``sla_clocks``, and nothing else."""

from __future__ import annotations

from services.sla_monitor.clocks import NewClock
from services.sla_monitor.models import SlaClock


def test_a_new_clock_has_exactly_the_tables_columns() -> None:
    assert set(NewClock.__slots__) == set(SlaClock.__table__.columns.keys())
