"""The reps CSV, read before anything is applied: every problem named by row, nothing raised."""

from __future__ import annotations

import pytest

from services.routing.importer import parse_reps


def test_rows_become_reps_with_their_lists_and_numbers() -> None:
    text = 'email,name,teams,weight\nana@example.com,Ana,"emea; smb",3\r\nbo@example.com,Bo,,1\n'
    reps, errors = parse_reps(text)
    assert errors == []
    assert [(r.email, r.teams, r.weight) for r in reps] == [
        ("ana@example.com", ["emea", "smb"], 3),
        ("bo@example.com", [], 1),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "\r\ufffd\ufffd{Ók",  # what the fuzzer sent: a lone carriage return, then bytes not UTF-8
        'email,name\n"ana@example.com,Ana\n',  # a quote never closed
        "email,name\nana@example.com,An\ra\n",
    ],
)
def test_text_that_is_not_csv_is_a_problem_not_an_error(text: str) -> None:
    reps, errors = parse_reps(text)
    assert reps == [] or errors
    assert errors and all(e.startswith("row ") for e in errors)


def test_an_unknown_column_is_named() -> None:
    reps, errors = parse_reps("email,name,shoe_size\na@example.com,A,44\n")
    assert reps == [] and errors == ["row 1: unknown columns ['shoe_size']"]
