"""The outcomes of applying transactions: one list of names, one counter type.

Every report (the importer's ``BundleReport``, ``ApplyResult``, the ledger's
per-bundle counts, ``bundle status``, the CLI's tables and the REST answers)
counts the same outcomes, in this order, under these names.  The ledger status
of a row (``TxStatus``) maps to a counter with :func:`counter_name`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The outcome counters every result and report carries, in display order.
OUTCOMES = ("applied", "duplicate", "stale", "conflict", "failed", "deleted_missing")

#: What a person reads for each counter (tables, one-line summaries).
LABELS = {
    "applied": "applied",
    "duplicate": "duplicate",
    "stale": "stale",
    "conflict": "conflict",
    "failed": "failed",
    "deleted_missing": "deleted-missing",
}


def counter_name(status: str) -> str:
    """The counter of a ledger status (``deleted-missing`` -> ``deleted_missing``)."""
    return str(status).replace("-", "_")


@dataclass(kw_only=True)
class Counts:
    """One counter per outcome; the base of every result and report (keyword-only
    fields, so a subclass may add positional ones of its own)."""

    applied: int = 0
    duplicate: int = 0
    stale: int = 0
    conflict: int = 0
    failed: int = 0
    deleted_missing: int = 0

    def count(self, status: str, n: int = 1) -> None:
        name = counter_name(status)
        setattr(self, name, getattr(self, name) + n)

    def add_counts(self, other: Counts) -> None:
        for name in OUTCOMES:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in OUTCOMES}

    def summary(self) -> str:
        """``applied 3, duplicate 0, ...`` for one-line reports."""
        return ", ".join(f"{LABELS[n]} {getattr(self, n)}" for n in OUTCOMES)


@dataclass
class ApplyResult(Counts):
    """Counts per outcome and one message per row that needs a person's attention."""

    skipped: int = 0
    messages: list[str] = field(default_factory=list)

    def merge(self, other: ApplyResult) -> None:
        self.add_counts(other)
        self.skipped += other.skipped
        self.messages.extend(other.messages)

    def to_dict(self) -> dict:
        return {**self.counts(), "skipped": self.skipped, "messages": list(self.messages)}


@dataclass
class CopyResult:
    """What ``copy_to_incoming_transaction`` did (edc-sync's two-alias route)."""

    copied: int = 0
    duplicate: int = 0
    conflict: int = 0
    messages: list[str] = field(default_factory=list)
