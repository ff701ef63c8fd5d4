"""The fast form of compiled CEL conditions (scoring rulesets, routing rules): ``lead.title`` read
from a top-level variable.

Handing a lead to CEL costs more than running 30 conditions. The ``cel`` package converts each
Python value by trying bool, int, unsigned, float, timestamps and duration before text, and each
failed try on a string raises (and discards) a Python exception; so does each string KEY of a
nested dict, twice. A lead as a nested map ``{"lead": {...}}`` therefore costs ~2.5 µs per field,
the same fields as top-level variables ~1 µs (text) or ~0.2 µs (numbers, booleans).

So the conditions are rewritten once, at compile time: ``lead.title`` becomes the variable
``lead__title`` (outside string literals only), and each lead sets just the variables the
conditions name, in one reused ``cel.Context``. A ruleset that uses ``lead`` or ``engagement``
other than as ``lead.<field>`` (a macro variable named ``lead``, ``has(lead.x)``…) keeps the
nested form; so does one whose rewritten program disagrees with the original on the samples.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cel

ROOTS = ("lead", "engagement")
_TOKEN = re.compile(
    r"""(?P<text>[rRbB]{0,2}(?:'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
    |(?P<root>\b(?:lead|engagement)\b)(?P<select>\s*\.\s*(?P<field>[A-Za-z_]\w*))?""",
    re.S | re.X,
)


@dataclass(frozen=True, slots=True)
class Ref:
    variable: str  # the top-level CEL variable, e.g. "lead__title"
    root: str  # "lead" or "engagement"
    field: str  # "title"


def flatten(source: str) -> tuple[str, tuple[Ref, ...]] | None:
    """``source`` with ``lead.x``/``engagement.x`` as top-level variables; ``None`` if it
    uses either in any other way (then only the nested form is exact)."""
    out, refs, at = [], {}, 0
    for match in _TOKEN.finditer(source):
        if match["root"] is None:
            continue
        before = source[: match.start()].rstrip()
        if before.endswith(".") or match["select"] is None:
            return None  # a field of something else, or the whole variable
        ref = Ref(f"{match['root']}__{match['field']}", match["root"], match["field"])
        refs[ref.variable] = ref
        out += [source[at : match.start()], ref.variable]
        at = match.end()
    out.append(source[at:])
    return "".join(out), tuple(refs.values())


@dataclass(eq=False)
class FlatProgram:
    """ONE program for every condition, fed top-level variables through a reused context."""

    program: Any
    refs: tuple[Ref, ...]
    context: Any = field(default_factory=cel.Context)

    def variables(self, nested: dict[str, Any]) -> dict[str, Any]:
        """Raises ``KeyError`` when a named field is absent (the caller falls back)."""
        return {ref.variable: nested[ref.root][ref.field] for ref in self.refs}

    def run(self, variables: dict[str, Any]) -> list[bool]:
        self.context.update(variables)
        return self.program.execute(self.context)


def flat_program(
    sources: Sequence[str], nested: Any, samples: Sequence[dict[str, Any]]
) -> FlatProgram | None:
    """The fast program, if every condition flattens and it agrees with ``nested`` on samples."""
    rewritten, refs = [], {}
    for source in sources:
        flat = flatten(source)
        if flat is None:
            return None
        rewritten.append(flat[0])
        refs.update({ref.variable: ref for ref in flat[1]})
    try:
        program = cel.compile("[" + ", ".join(f"({s})" for s in rewritten) + "]")
        fast = FlatProgram(program, tuple(refs.values()))
        agrees = all(fast.run(fast.variables(s)) == nested.execute(s) for s in samples)
    except Exception:  # noqa: BLE001 — any doubt: the nested form, which is always exact
        return None
    return fast if agrees else None
