"""Account matching: is this lead from a company we already sell to? Pure, no I/O.

First by email or website domain (exact, free-mail domains never match), then by company name:
normalised (case, punctuation, legal suffixes like Inc or GmbH dropped) and compared with
rapidfuzz's token-sort ratio, so "Acme Corp." and "ACME Corporation" are the same account while
"Acme Robotics" is not. The best score at or above the threshold wins; ties go to the older account.

Only names whose length allows the threshold are compared: the ratio of two strings is at most
``1 - |a - b| / (a + b)`` of their lengths ``a`` and ``b`` (rapidfuzz's Indel similarity), so the
names outside that length window could never reach it; they are skipped without being scored.

Within the window, only names sharing a piece of the lead's name are scored. A name reaches the
threshold only within an Indel distance ``k`` of the lead's (at most ``(1 - threshold)`` times
their summed length); cut the lead's name into ``k + 1`` pieces: each insertion or deletion
breaks at most one piece, so a name within distance ``k`` contains at least one piece whole, and
so each of that piece's 3-grams. Names with none of the pieces' rarest 3-grams are skipped (an
index of 3-grams says which have them); when the pieces are too short to say, or the names left
are most of the window, the whole window is scored as before.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from uuid import UUID

from rapidfuzz import fuzz, process, utils

LEGAL_SUFFIXES = frozenset(
    "inc incorporated corp corporation co company ltd limited llc llp plc gmbh ag kg ug sa sas "
    "sarl srl spa bv nv oy ab as aps pty pvt kk group holding holdings the".split()
)
_WORD = re.compile(r"[a-z0-9]+")
GRAM = 3


@dataclass(frozen=True, slots=True)
class AccountInfo:
    id: UUID
    name: str
    domain: str | None
    owner_id: UUID | None


@dataclass(frozen=True, slots=True)
class AccountMatch:
    account: AccountInfo
    by: str
    score: float


def normalise_name(name: str) -> str:
    """Lower-case words without legal suffixes, in sorted order: comparing these with a plain
    ratio is rapidfuzz's token-sort ratio, with the sorting done once per account."""
    words = _WORD.findall(utils.default_process(name))
    kept = [w for w in words if w not in LEGAL_SUFFIXES]
    return " ".join(sorted(kept or words))


def normalise_domain(domain: str) -> str:
    domain = domain.strip().lower()
    for prefix in ("https://", "http://"):
        domain = domain.removeprefix(prefix)
    domain = domain.split("/", 1)[0].removeprefix("www.")
    return domain


class AccountIndex:
    def __init__(self, accounts: list[AccountInfo]) -> None:
        ordered = sorted(accounts, key=lambda a: a.id)
        self.by_domain = {normalise_domain(a.domain): a for a in ordered if a.domain}
        self.by_name: dict[str, AccountInfo] = {}
        for account in ordered:
            self.by_name.setdefault(normalise_name(account.name), account)
        self.rank = {name: i for i, name in enumerate(self.by_name)}
        """A name's place in account order: the older account wins a tie."""
        self.names = sorted(self.by_name, key=lambda name: (len(name), self.rank[name]))
        self.lengths = [len(name) for name in self.names]
        self.grams: dict[str, list[int]] = {}
        """3-gram → the places in ``names`` of the names containing it, ascending."""
        for place, name in enumerate(self.names):
            for gram in {name[i : i + GRAM] for i in range(len(name) - GRAM + 1)}:
                self.grams.setdefault(gram, []).append(place)

    def __len__(self) -> int:
        return len(self.by_name)

    def match(self, domain: str, company: str, *, min_similarity: float) -> AccountMatch | None:
        if domain:
            account = self.by_domain.get(normalise_domain(domain))
            if account is not None:
                return AccountMatch(account, "domain", 100.0)
        name = normalise_name(company) if company else ""
        if not name:
            return None
        exact = self.by_name.get(name)
        if exact is not None:
            return AccountMatch(exact, "name", 100.0)
        found = self._closest(name, min_similarity)
        if found is None:
            return None
        return AccountMatch(self.by_name[found[0]], "name", round(found[1], 1))

    def _closest(self, name: str, min_similarity: float) -> tuple[str, float] | None:
        """The most similar name at or above ``min_similarity`` (ties: the one first in the
        index), comparing only the names whose length leaves the threshold reachable."""
        low, high = self._window(name, min_similarity)
        if low >= high:
            return None
        scored = process.extract(
            name,
            self._candidates(name, min_similarity, low, high),
            scorer=fuzz.ratio,
            score_cutoff=min_similarity,
            limit=None,
        )
        if not scored:
            return None
        best, score, _ = max(scored, key=lambda s: (s[1], -self.rank[s[0]]))
        return best, float(score)

    def _window(self, name: str, min_similarity: float) -> tuple[int, int]:
        """The places in ``names`` of the names whose length leaves the threshold reachable."""
        cutoff = min_similarity / 100  # at least 0.5 (RoutingSpec)
        low = bisect_left(self.lengths, len(name) * cutoff / (2 - cutoff) - 1e-9)
        high = bisect_right(self.lengths, len(name) * (2 - cutoff) / cutoff + 1e-9)
        return low, high

    def _candidates(self, name: str, min_similarity: float, low: int, high: int) -> list[str]:
        """The names of ``names[low:high]`` that contain a piece of ``name``, when that says
        more than the window (see the module's docstring); else the window."""
        most = int((100 - min_similarity) * (len(name) + self.lengths[high - 1]) / 100 + 1e-6)
        pieces = most + 1
        if len(name) < pieces * GRAM:
            return self.names[low:high]
        found: set[int] = set()
        room = (high - low) // 2
        for k in range(pieces):
            piece = name[k * len(name) // pieces : (k + 1) * len(name) // pieces]
            places = min(
                (self.grams.get(piece[i : i + GRAM], ()) for i in range(len(piece) - GRAM + 1)),
                key=len,
            )
            found.update(places[bisect_left(places, low) : bisect_left(places, high)])
            if len(found) > room:
                return self.names[low:high]
        return [self.names[place] for place in sorted(found)]
