"""The monthly review as files: the HTML page (templates/review.html, charts inline, styles
inline so the file stands alone), a zip of it with one CSV per table, and both written to a
folder."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from services.analytics.review import Review, charts, tables

pages = Environment(
    loader=PackageLoader("services.analytics", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
)


def share(rate: float | None, interval: tuple[float, float] | None) -> str:
    if rate is None:
        return "–"
    if interval is not None:
        return f"{interval[0]:.0%}–{interval[1]:.0%}"
    return f"{rate:.1%}"


def duration(seconds: float | None) -> str:
    return "–" if seconds is None else str(timedelta(seconds=round(seconds)))


def number(metric: str, value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0%}" if metric == "mql_to_sql" else f"{value:,.0f}"


CSS = (Path(__file__).parent / "static" / "console.css").read_text()
"""The console's stylesheet: linked from its pages, inlined in the review's standalone file."""


def html(review: Review, *, console: dict[str, Any] | None = None) -> str:
    """The review's page: standalone (styles inline), or ``console``'s page (its caller…)."""
    template = "console_review.html" if console is not None else "review.html"
    return pages.get_template(template).render(
        review=review, charts=charts(review), share=share, duration=duration, number=number,
        css=CSS, current="review", **(console or {}),
    )  # fmt: skip


FORMULA = ("=", "+", "-", "@", "\t", "\r")


def as_csv(table: tuple[list[str], list[list[Any]]]) -> str:
    """The table as CSV; a text cell a spreadsheet would run as a formula (a campaign named
    ``=HYPERLINK(…)``) is written with a leading ``'``, so it is read as text."""
    out = io.StringIO()
    writer = csv.writer(out)
    headings, rows = table
    writer.writerow(headings)
    writer.writerows([[_cell(value) for value in row] for row in rows])
    return out.getvalue()


def _cell(value: Any) -> Any:
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA) else value


def archive(review: Review, page: str) -> bytes:
    """A zip of the page and one CSV per table, named after the month."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as files:
        files.writestr(f"review-{review.month}.html", page)
        for name, table in tables(review).items():
            files.writestr(f"review-{review.month}-{name}.csv", as_csv(table))
    return buffer.getvalue()


def write(review: Review, folder: Path) -> list[Path]:
    """The page and its zip in ``folder`` (made if missing), written whole or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    page = html(review)
    written = []
    for name, content in (
        (f"review-{review.month}.html", page.encode()),
        (f"review-{review.month}.zip", archive(review, page)),
    ):
        target = folder / name
        partial = target.with_suffix(target.suffix + ".part")
        partial.write_bytes(content)
        partial.replace(target)
        written.append(target)
    return written
