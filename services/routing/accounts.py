"""Account matching: is this lead from a company we already sell to? Pure, no I/O.

First by email or website domain (exact, free-mail domains never match), then by company name:
normalised (case, punctuation, legal suffixes like Inc or GmbH dropped) and compared with
rapidfuzz's token-sort ratio, so "Acme Corp." and "ACME Corporation" are the same account while
"Acme Robotics" is not. The best score at or above the threshold wins; ties go to the older account.

Only names whose length allows the threshold are compared: the ratio of two strings is at most
``1 - |a - b| / (a + b)`` of their lengths ``a`` and ``b`` (rapidfuzz's Indel similarity), so the
names outside that length window could never reach it; they are skipped without being scored.
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
        cutoff = min_similarity / 100  # at least 0.5 (RoutingSpec)
        low = bisect_left(self.lengths, len(name) * cutoff / (2 - cutoff) - 1e-9)
        high = bisect_right(self.lengths, len(name) * (2 - cutoff) / cutoff + 1e-9)
        if low >= high:
            return None
        scored = process.extract(
            name,
            self.names[low:high],
            scorer=fuzz.ratio,
            score_cutoff=min_similarity,
            limit=None,
        )
        if not scored:
            return None
        best, score, _ = max(scored, key=lambda s: (s[1], -self.rank[s[0]]))
        return best, float(score)
