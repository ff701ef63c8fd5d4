"""The review's CSV files: a text cell that a spreadsheet would run as a formula is kept text."""

from __future__ import annotations

import csv
import io

from services.analytics.review_files import as_csv


def test_formulas_in_text_cells_are_written_as_text() -> None:
    table = (
        ["source", "kind", "reason", "count"],
        [["=HYPERLINK(1)", "rejected", "+1", -3], ["web", "lost", "@me", 2]],
    )
    rows = list(csv.reader(io.StringIO(as_csv(table))))
    assert rows == [
        ["source", "kind", "reason", "count"],
        ["'=HYPERLINK(1)", "rejected", "'+1", "-3"],  # a number stays a number
        ["web", "lost", "'@me", "2"],
    ]
