"""Signed receipts: the server's answer that closes the store-and-forward loop.

After importing bundles a server writes a receipt naming, for ONE site, which
bundles it now holds and what became of every transaction in them (applied,
duplicate, superseded, failed, in conflict, waiting ...).  Carried back on the
stick, the site checks it and marks the transactions the server holds as
delivered; the others stay at the site, marked with the server's reason.  It
may also list the site's files (by SHA-256) the server holds and those it needs
sent again (RECEIPTS.md §3.7), so a site neither resends nor deletes a file on
a guess.  A receipt that is forged, damaged, or meant for another site must
never mark anything, so reading is strict: every rule here is a MUST in
docs/RECEIPTS.md, and every failure is a :class:`ReceiptError` (a subclass per
cause, each with its own ``code``) naming the file.

Layout (docs/RECEIPTS.md §2)::

    MAGIC | body (B bytes, canonical msgpack) | signature (64) | B (u32 BE) | END_MAGIC
"""

from __future__ import annotations

import datetime as dt
import os
import re
import struct
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from bundlekit import age, limits
from bundlekit.canonical import UTC_TIME, format_utc
from bundlekit.canonical import packb as canonical_packb
from bundlekit.errors import (
    ReceiptBadSignature,
    ReceiptCorrupt,
    ReceiptError,
    ReceiptIssuerMismatch,
    ReceiptNotForUs,
    ReceiptTruncated,
    ReceiptUntrusted,
)
from bundlekit.fsutil import AtomicFile
from bundlekit.keys import FINGERPRINT, Identity, PublicKey
from bundlekit.naming import safe_site

#: RECEIPTS.md §2.1: the first bytes of every version-2 receipt.
MAGIC = b"bundlekit.org/v2/receipt\n"
#: RECEIPTS.md §2.4: the last bytes of every version-2 receipt.
END_MAGIC = b"bundlekit.org/v2/receipt-end\n"
#: RECEIPTS.md §2.3: domain label prefixed to the body before signing.
SIGNATURE_CONTEXT = b"bundlekit.org/v2/receipt-signature\n"
#: RECEIPTS.md §3.1: the body's format version.
FORMAT_VERSION = 2
SIGNATURE_SIZE = 64
_BODY_LENGTH = struct.Struct(">I")
FOOTER_SIZE = _BODY_LENGTH.size + len(END_MAGIC)
FIXED_OVERHEAD = len(MAGIC) + SIGNATURE_SIZE + FOOTER_SIZE
#: RECEIPTS.md §4: readers refuse larger files; writers never produce them.
MAX_RECEIPT_SIZE = limits.MAX_RECEIPT_SIZE
MAX_BODY_SIZE = MAX_RECEIPT_SIZE - FIXED_OVERHEAD
#: RECEIPTS.md §3.3: at most this many entries in one receipt.
MAX_ENTRIES = limits.MAX_RECEIPT_ENTRIES
#: RECEIPTS.md §3.5: at most this many outcome runs, and distinct reasons, per entry.
MAX_RUNS = 50_000
MAX_REASONS = 100
#: RECEIPTS.md §3: site names and reasons are at most this many characters.
MAX_SITE = 200
MAX_REASON = 200
RECEIPT_SUFFIX = ".receipt"

#: RECEIPTS.md §3.4: the statuses, and those meaning "the server has the bundle".
STATUSES = ("held", "applied", "duplicate", "quarantined", "rejected")
HELD_STATUSES = frozenset({"held", "applied", "duplicate", "quarantined"})
NEEDS_REASON = frozenset({"quarantined", "rejected"})

#: RECEIPTS.md §3.5: what became of one transaction, and those the server holds for
#: good (the site may delete them).  The others stay at the site.
OUTCOMES = (
    "applied", "duplicate", "superseded", "discarded",
    "waiting", "failed", "conflict", "quarantined", "unlisted",
)
SERVER_HOLDS = frozenset({"applied", "duplicate", "superseded", "discarded"})
#: RECEIPTS.md §3.5: the reason of the run that stands for runs past MAX_RUNS.
UNLISTED_REASON = "too many outcomes to list in a receipt; see `bundle review` at the server"
MORE_REASONS = "more reasons than a receipt lists; see `bundle review` at the server"

BODY_KEYS = frozenset({"v", "id", "issuer", "subject", "created", "entries", "contiguous"})
#: RECEIPTS.md §3.7: the one optional key of the body, and the keys of its map.
FILES_KEY = "files"
FILES_KEYS = frozenset({"held", "needed"})
#: RECEIPTS.md §3.7: at most this many file digests (held and needed) per receipt.
MAX_FILES = limits.MAX_RECEIPT_FILES
#: Bytes a full ``files`` map may take in a body (34 per digest and its framing):
#: room :func:`split_entries` leaves beside the entries.
_FILES_ROOM = 34 * MAX_FILES + 32
#: msgpack values the entries of one receipt may take: the rest is for the body's
#: own fields and its ``files``.
_ENTRY_VALUES = limits.MAX_RECEIPT_VALUES - 64 - MAX_FILES
ISSUER_KEYS = frozenset({"site", "fingerprint", "ed25519", "age_recipient"})
SUBJECT_KEYS = frozenset({"site", "fingerprint"})
ENTRY_KEYS = frozenset(
    {"bundle_id", "seq", "digest", "status", "reason", "records", "outcomes", "reasons"}
)

_MAX_INT = 2**63 - 1
_CREATED = UTC_TIME
_FINGERPRINT = FINGERPRINT
_OTHER_VERSION = re.compile(rb"bundlekit\.org/v[0-9]{1,3}/receipt\n")
_OLDER_VERSION = b"bundlekit.org/v1/receipt\n"


@dataclass(frozen=True)
class Run:
    """Transactions ``first`` .. ``first + count - 1`` (positions in the bundle, from
    0) share one ``outcome`` and ``reason``."""

    first: int
    count: int
    outcome: str
    reason: str = ""

    @property
    def server_holds(self) -> bool:
        return self.outcome in SERVER_HOLDS


@dataclass(frozen=True)
class ReceiptEntry:
    """One bundle the server reports on.

    ``status``: ``held`` (stored, not applied yet), ``applied``, ``duplicate``
    (had it already), ``quarantined`` (stored but set aside, see ``reason``) or
    ``rejected`` (not kept; ``reason`` says why).  ``outcomes``: what became of
    each transaction, as runs of positions (:class:`Run`); a writer given none
    reports every transaction with the bundle's own outcome (``applied``,
    ``waiting`` for ``held``, ``duplicate``, ``quarantined``).
    """

    bundle_id: uuid.UUID
    seq: int
    digest: bytes
    status: str
    records: int = 0
    reason: str = ""
    outcomes: tuple[Run, ...] = ()

    @property
    def held(self) -> bool:
        """Whether the server has this bundle, so resending it would not help."""
        return self.status in HELD_STATUSES

    def counts(self) -> dict[str, int]:
        """Transactions per outcome."""
        out: dict[str, int] = {}
        for run in self.outcomes:
            out[run.outcome] = out.get(run.outcome, 0) + run.count
        return out


@dataclass(frozen=True)
class Receipt:
    """A verified receipt: trusted issuer, meant for us."""

    receipt_id: uuid.UUID
    issuer: PublicKey
    subject_site: str
    subject_fingerprint: str
    created: dt.datetime
    entries: tuple[ReceiptEntry, ...]
    highest_contiguous_seq: int
    path: Path | None = None
    version: int = FORMAT_VERSION
    #: RECEIPTS.md §3.7: SHA-256 digests of files the issuer holds, verified, and of
    #: files it needs sent again (missing or damaged); each sorted, never both.
    files_held: tuple[bytes, ...] = ()
    files_needed: tuple[bytes, ...] = ()

    @property
    def held(self) -> tuple[ReceiptEntry, ...]:
        return tuple(e for e in self.entries if e.held)

    @property
    def rejected(self) -> tuple[ReceiptEntry, ...]:
        return tuple(e for e in self.entries if e.status == "rejected")


class Runs:
    """Builds an entry's outcomes from one outcome per transaction, in position
    order, keeping it small (RECEIPTS.md §3.5): equal neighbours merge into one
    run; past ``MAX_RUNS - 1`` runs the rest become one ``unlisted`` run (which the
    site keeps: it never deletes what a receipt does not say the server holds),
    and past ``MAX_REASONS - 2`` distinct reasons the others share one."""

    def __init__(self) -> None:
        self.runs: list[list[Any]] = []
        self.reasons: set[str] = set()
        self.next = 0

    def add(self, outcome: str, reason: str = "", count: int = 1) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        reason = one_line(reason)
        if reason and reason not in self.reasons:
            if len(self.reasons) >= MAX_REASONS - 2:  # room for these two
                reason = MORE_REASONS
            self.reasons.add(reason)
        runs = self.runs
        if runs and runs[-1][2] == outcome and runs[-1][3] == reason:
            runs[-1][1] += count
        elif len(runs) >= MAX_RUNS - 1 and runs[-1][2] == "unlisted":
            runs[-1][1] += count
        elif len(runs) >= MAX_RUNS - 1:
            self.reasons.add(UNLISTED_REASON)
            runs.append([self.next, count, "unlisted", UNLISTED_REASON])
        else:
            runs.append([self.next, count, outcome, reason])
        self.next += count

    def result(self) -> tuple[Run, ...]:
        return tuple(Run(*r) for r in self.runs)


def one_line(reason: Any) -> str:
    """A reason as a receipt carries it: one line, at most MAX_REASON characters."""
    text = " ".join("".join(c if c.isprintable() else " " for c in str(reason)).split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


# ---------------------------------------------------------------------------
# Writing


def highest_contiguous(entries: Iterable[ReceiptEntry], start: int = 0) -> int:
    """The largest n such that seq start+1..n are all held, given these entries."""
    held = {e.seq for e in entries if e.held}
    n = start
    while n + 1 in held:
        n += 1
    return n


_format_created = format_utc
_packb = canonical_packb


_DEFAULT_OUTCOME = {"applied": "applied", "held": "waiting", "duplicate": "duplicate",
                    "quarantined": "quarantined"}


def _entry_dict(entry: ReceiptEntry) -> dict[str, Any]:
    if not isinstance(entry.bundle_id, uuid.UUID):
        raise TypeError("bundle_id must be a UUID")
    if type(entry.seq) is not int or not 1 <= entry.seq <= _MAX_INT:
        raise ValueError(f"seq must be a positive int, got {entry.seq!r}")
    if type(entry.records) is not int or not 0 <= entry.records <= _MAX_INT:
        raise ValueError(f"records must be a non-negative int, got {entry.records!r}")
    if not isinstance(entry.digest, bytes) or len(entry.digest) != 32:
        raise ValueError("digest must be the 32-byte bundle digest")
    if entry.status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {entry.status!r}")
    reason = one_line(entry.reason)  # one line, whatever the exception said
    if entry.status in NEEDS_REASON and not reason:
        raise ValueError(f"a {entry.status} entry needs a reason")
    runs, reasons = _runs_of(entry)
    return {
        "bundle_id": str(entry.bundle_id),
        "seq": entry.seq,
        "digest": entry.digest,
        "status": entry.status,
        "reason": reason,
        "records": entry.records,
        "outcomes": runs,
        "reasons": reasons,
    }


def _runs_of(entry: ReceiptEntry) -> tuple[list[list[Any]], list[str]]:
    """The entry's outcomes in their canonical encoding (RECEIPTS.md §3.5)."""
    if entry.status == "rejected" or entry.records == 0:
        if entry.outcomes:
            raise ValueError(f"a {entry.status} entry of {entry.records} records has no outcomes")
        return [], []
    builder = Runs()
    if not entry.outcomes:
        builder.add(_DEFAULT_OUTCOME[entry.status], "", entry.records)
    for run in entry.outcomes:
        if run.first != builder.next or run.count < 1:
            raise ValueError("outcome runs must cover positions 0.. in order, without gaps")
        builder.add(run.outcome, run.reason, run.count)
    if builder.next != entry.records:
        raise ValueError(f"outcome runs cover {builder.next} transactions, not {entry.records}")
    reasons: list[str] = []
    index: dict[str, int] = {}
    encoded = []
    for first, count, outcome, reason in builder.runs:
        if not reason:
            encoded.append([first, count, outcome])
            continue
        if reason not in index:
            index[reason] = len(reasons)
            reasons.append(reason)
        encoded.append([first, count, outcome, index[reason]])
    return encoded, reasons


def _values(entry: dict[str, Any]) -> int:
    """msgpack values of one encoded entry (what ``limits.scan`` counts)."""
    return 17 + sum(1 + len(run) for run in entry["outcomes"]) + len(entry["reasons"])


def split_entries(entries: Iterable[ReceiptEntry]) -> Iterator[list[ReceiptEntry]]:
    """Entries in groups that each fit one receipt: MAX_ENTRIES, MAX_BODY_SIZE, and
    the value, run and reason budgets of ``bundlekit.limits``."""
    group: list[ReceiptEntry] = []
    size = values = runs = reasons = 0
    budget = MAX_BODY_SIZE - 4096 - _FILES_ROOM  # the body's other fields, its files
    for entry in entries:
        encoded = _entry_dict(entry)
        n = len(_packb(encoded))
        v, r, k = _values(encoded), len(encoded["outcomes"]), len(encoded["reasons"])
        if group and (
            len(group) >= MAX_ENTRIES
            or size + n > budget
            or values + v > _ENTRY_VALUES
            or runs + r > limits.MAX_RECEIPT_RUNS
            or reasons + k > limits.MAX_RECEIPT_REASONS
        ):
            yield group
            group, size, values, runs, reasons = [], 0, 0, 0, 0
        group.append(entry)
        size, values, runs, reasons = size + n, values + v, runs + r, reasons + k
    yield group


def split_files(
    held: Iterable[bytes], needed: Iterable[bytes]
) -> list[tuple[tuple[bytes, ...], tuple[bytes, ...]]]:
    """(held, needed) digests in groups of at most MAX_FILES, one group per receipt,
    the needed ones first (a site cannot guess those; a held one it does not hear
    of costs only a resend).  A digest in both counts as needed.  At least one
    group, possibly empty."""
    need = sorted(set(needed))
    have = sorted(set(held) - set(need))
    both = [(d, True) for d in need] + [(d, False) for d in have]
    groups = []
    for i in range(0, len(both), MAX_FILES):
        part = both[i : i + MAX_FILES]
        groups.append((tuple(sorted(d for d, n in part if not n)), tuple(sorted(d for d, n in part if n))))
    return groups or [((), ())]


def _files_dict(held: Iterable[bytes], needed: Iterable[bytes]) -> dict[str, list[bytes]] | None:
    """The body's ``files`` (RECEIPTS.md §3.7), or None when there is nothing to say."""
    held, needed = sorted(set(held)), sorted(set(needed))
    for d in (*held, *needed):
        if not isinstance(d, bytes) or len(d) != 32:
            raise ValueError("a file digest must be 32 bytes (SHA-256)")
    if set(held) & set(needed):
        raise ValueError("a file digest cannot be both held and needed")
    if len(held) + len(needed) > MAX_FILES:
        raise ValueError(f"a receipt lists at most {MAX_FILES} file digests; write several (split_files)")
    if not held and not needed:
        return None
    return {"held": held, "needed": needed}


def _as_entry(e: ReceiptEntry | Mapping[str, Any]) -> ReceiptEntry:
    return e if isinstance(e, ReceiptEntry) else ReceiptEntry(**e)


def encode_receipt(
    *,
    issuer: Identity,
    subject: PublicKey,
    entries: Iterable[ReceiptEntry | Mapping[str, Any]],
    created: dt.datetime | None = None,
    highest_contiguous_seq: int | None = None,
    receipt_id: uuid.UUID | None = None,
    files_held: Iterable[bytes] = (),
    files_needed: Iterable[bytes] = (),
) -> bytes:
    """The bytes of a receipt (RECEIPTS.md §2).  ``created``/``receipt_id`` are test seams.

    ``highest_contiguous_seq`` should come from the server's ledger (which
    knows earlier receipts' bundles); when omitted it is computed from these
    entries alone.  ``files_held``/``files_needed``: SHA-256 digests of files
    (RECEIPTS.md §3.7; at most MAX_FILES in all, see :func:`split_files`); a
    receipt with neither has no ``files`` key, as before it existed.
    """
    items = sorted((_as_entry(e) for e in entries), key=lambda e: (e.seq, str(e.bundle_id)))
    if len(items) > MAX_ENTRIES:
        raise ValueError(f"a receipt holds at most {MAX_ENTRIES} entries; write several")
    if len({e.bundle_id for e in items}) != len(items):
        raise ValueError("a bundle id appears twice in the entries")
    if highest_contiguous_seq is None:
        highest_contiguous_seq = highest_contiguous(items)
    if type(highest_contiguous_seq) is not int or not 0 <= highest_contiguous_seq <= _MAX_INT:
        raise ValueError("highest_contiguous_seq must be a non-negative int")
    pub = issuer.public
    body = {
        "v": FORMAT_VERSION,
        "id": str(receipt_id or uuid.uuid4()),
        "issuer": {
            "site": pub.site,
            "fingerprint": pub.fingerprint,
            "ed25519": pub.ed25519,
            "age_recipient": pub.age_recipient,
        },
        "subject": {"site": subject.site, "fingerprint": subject.fingerprint},
        "created": _format_created(created or dt.datetime.now(dt.UTC)),
        "entries": [_entry_dict(e) for e in items],
        "contiguous": highest_contiguous_seq,
    }
    files = _files_dict(files_held, files_needed)
    if files is not None:
        body[FILES_KEY] = files
    data = _packb(body)
    encoded = body["entries"]
    if (
        len(data) > MAX_BODY_SIZE
        or sum(_values(e) for e in encoded) > _ENTRY_VALUES
        or sum(len(e["outcomes"]) for e in encoded) > limits.MAX_RECEIPT_RUNS
        or sum(len(e["reasons"]) for e in encoded) > limits.MAX_RECEIPT_REASONS
    ):
        raise ValueError("receipt too large; write several (split_entries)")
    signature = issuer.sign(SIGNATURE_CONTEXT + data)
    return MAGIC + data + signature + _BODY_LENGTH.pack(len(data)) + END_MAGIC


def receipt_file_name(
    issuer_site: str, subject_site: str, created: dt.datetime, receipt_id: uuid.UUID
) -> str:
    """``receipt-{issuer}-{subject}-{YYYYMMDDTHHMMSSZ}-{id8}.receipt`` (RECEIPTS.md §5).

    Built from sanitised parts only: lower-case ASCII letters, digits and
    hyphens, so it is the same name on FAT32, NTFS and case-insensitive disks.
    """
    stamp = created.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ").lower()
    return (
        f"receipt-{safe_site(issuer_site)}-{safe_site(subject_site)}-{stamp}-"
        f"{receipt_id.hex[:8]}{RECEIPT_SUFFIX}"
    )


def write_receipt(
    out_dir: str | os.PathLike[str],
    *,
    issuer: Identity,
    subject: PublicKey,
    entries: Iterable[ReceiptEntry | Mapping[str, Any]],
    created: dt.datetime | None = None,
    highest_contiguous_seq: int | None = None,
    receipt_id: uuid.UUID | None = None,
    files_held: Iterable[bytes] = (),
    files_needed: Iterable[bytes] = (),
) -> Path:
    """Write a receipt into ``out_dir`` atomically; return its path.

    The file appears under its final name only once complete and fsynced, so a
    stick pulled mid-write never carries a half receipt.  Raises
    :class:`~bundlekit.errors.WriteFailed` when the medium refuses.
    """
    created = created or dt.datetime.now(dt.UTC)
    receipt_id = receipt_id or uuid.uuid4()
    data = encode_receipt(
        issuer=issuer,
        subject=subject,
        entries=entries,
        created=created,
        highest_contiguous_seq=highest_contiguous_seq,
        receipt_id=receipt_id,
        files_held=files_held,
        files_needed=files_needed,
    )
    name = receipt_file_name(issuer.site, subject.site, created, receipt_id)
    with AtomicFile(out_dir, name[: -len(RECEIPT_SUFFIX)]) as f:
        try:
            f.file.write(data)
        except OSError as e:
            from bundlekit.fsutil import write_failed

            raise write_failed(e, os.path.join(os.fspath(out_dir), name)) from e
        return Path(f.commit(name))


# ---------------------------------------------------------------------------
# Reading


class _Bad(Exception):
    """Internal: a structural problem, turned into a ReceiptError by the caller."""


def _need(value: Any, kind: type, name: str) -> Any:
    if type(value) is not kind:
        raise _Bad(f"{name} has the wrong type")
    return value


def _text(value: Any, name: str, limit: int, *, empty: bool = False) -> str:
    _need(value, str, name)
    if len(value) > limit or (not value and not empty) or not value.isprintable():
        raise _Bad(f"{name} is not acceptable text")
    return value


def _count(value: Any, name: str, minimum: int) -> int:
    _need(value, int, name)
    if not minimum <= value <= _MAX_INT:
        raise _Bad(f"{name} is out of range")
    return value


def _uuid(value: Any, name: str) -> uuid.UUID:
    _need(value, str, name)
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise _Bad(f"{name} is not a UUID") from None
    if str(parsed) != value:
        raise _Bad(f"{name} is not a canonical UUID")
    return parsed


def _map(value: Any, keys: frozenset[str], name: str) -> dict[str, Any]:
    _need(value, dict, name)
    if set(value) != keys:
        raise _Bad(f"{name} does not have exactly the fields of its kind")
    return value


def _split(data: bytes) -> tuple[bytes, bytes]:
    """Check the framing (RECEIPTS.md §2); return (body, signature)."""
    if not data:
        raise ReceiptCorrupt("is empty (0 bytes), not a receipt")
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):
            raise ReceiptTruncated("ends early: it looks half-copied")
        if data.startswith(_OLDER_VERSION):
            raise ReceiptCorrupt(
                "is a version-1 receipt, which does not say what became of each "
                "transaction; upgrade bundlekit on the server and import again"
            )
        if _OTHER_VERSION.match(data[:64]):
            raise ReceiptCorrupt(
                "is a receipt of a format version this release cannot read "
                "(written by a newer bundlekit?)"
            )
        raise ReceiptCorrupt("is not a receipt")
    if len(data) > MAX_RECEIPT_SIZE:
        raise ReceiptCorrupt("is too large to be a receipt")
    if len(data) < FIXED_OVERHEAD or not data.endswith(END_MAGIC):
        raise ReceiptTruncated("ends early or is damaged: the receipt footer is missing")
    (body_length,) = _BODY_LENGTH.unpack_from(data, len(data) - FOOTER_SIZE)
    if FIXED_OVERHEAD + body_length != len(data):
        raise ReceiptCorrupt("is damaged: its lengths do not add up")
    body = data[len(MAGIC) : len(MAGIC) + body_length]
    signature = data[len(MAGIC) + body_length : len(MAGIC) + body_length + SIGNATURE_SIZE]
    return body, signature


def _unpack(body: bytes) -> Any:
    try:
        # Unsigned input: bound values, depth and lengths before building anything.
        limits.scan(body, limits.RECEIPT)
    except limits.LimitExceeded as e:
        raise ReceiptCorrupt(f"is damaged: its body is refused ({e})") from None
    try:
        return msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_str_len=4096,
            max_bin_len=64,
            max_array_len=MAX_ENTRIES,
            max_map_len=16,
            max_ext_len=0,
        )
    except Exception:  # msgpack raises a zoo of types for bad input; all mean "damaged"
        raise ReceiptCorrupt("is damaged: its body does not decode") from None


def _parse_entry(raw: Any, i: int) -> ReceiptEntry:
    e = _map(raw, ENTRY_KEYS, f"entry {i}")
    status = _need(e["status"], str, f"entry {i} status")
    if status not in STATUSES:
        raise _Bad(f"entry {i} has an unknown status")
    reason = _text(e["reason"], f"entry {i} reason", MAX_REASON, empty=True)
    if status in NEEDS_REASON and not reason:
        raise _Bad(f"entry {i} is {status} without a reason")
    digest = _need(e["digest"], bytes, f"entry {i} digest")
    if len(digest) != 32:
        raise _Bad(f"entry {i} digest is not 32 bytes")
    records = _count(e["records"], f"entry {i} records", 0)
    return ReceiptEntry(
        bundle_id=_uuid(e["bundle_id"], f"entry {i} bundle_id"),
        seq=_count(e["seq"], f"entry {i} seq", 1),
        digest=digest,
        status=status,
        records=records,
        reason=reason,
        outcomes=_parse_runs(e, i, status, records),
    )


def _parse_runs(e: dict[str, Any], i: int, status: str, records: int) -> tuple[Run, ...]:
    """RECEIPTS.md §3.5: runs cover 0..records-1 in order; reasons are used, distinct,
    in order of first use (the canonical check then rejects merged-able runs)."""
    name = f"entry {i} outcomes"
    raw_runs = _need(e["outcomes"], list, name)
    reasons = [
        _text(r, f"entry {i} reason list", MAX_REASON)
        for r in _need(e["reasons"], list, f"entry {i} reasons")
    ]
    if len(reasons) > MAX_REASONS or len(set(reasons)) != len(reasons):
        raise _Bad(f"entry {i} reasons are not a short list of distinct reasons")
    if status == "rejected" or records == 0:
        if raw_runs or reasons:
            raise _Bad(f"{name}: a {status} entry of {records} records lists outcomes")
        return ()
    if not raw_runs or len(raw_runs) > MAX_RUNS:
        raise _Bad(f"{name}: not 1 to {MAX_RUNS} runs")
    runs: list[Run] = []
    used: list[int] = []
    position = 0
    for run in raw_runs:
        _need(run, list, name)
        if len(run) not in (3, 4):
            raise _Bad(f"{name}: a run is not [first, count, outcome(, reason)]")
        first = _count(run[0], name, 0)
        count = _count(run[1], name, 1)
        outcome = _need(run[2], str, name)
        if first != position or outcome not in OUTCOMES:
            raise _Bad(f"{name}: runs out of order or an unknown outcome")
        reason = ""
        if len(run) == 4:
            k = _count(run[3], name, 0)
            if k >= len(reasons):
                raise _Bad(f"{name}: a reason index is out of range")
            if k not in used:
                if k != len(used):
                    raise _Bad(f"{name}: reasons are not in order of first use")
                used.append(k)
            reason = reasons[k]
        if runs and runs[-1].outcome == outcome and runs[-1].reason == reason:
            raise _Bad(f"{name}: two neighbouring runs should be one")
        runs.append(Run(first, count, outcome, reason))
        position += count
    if position != records or len(used) != len(reasons):
        raise _Bad(f"{name}: the runs do not cover the {records} transactions exactly")
    return tuple(runs)


def _digests(value: Any, name: str) -> tuple[bytes, ...]:
    items = _need(value, list, name)
    for d in items:
        if type(d) is not bytes or len(d) != 32:
            raise _Bad(f"{name}: a file digest is not 32 bytes")
    if any(a >= b for a, b in zip(items, items[1:], strict=False)):
        raise _Bad(f"{name}: the digests are not sorted ascending without repeats")
    return tuple(items)


def _parse_files(raw: dict[str, Any]) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """RECEIPTS.md §3.7: ``files`` is optional; when present, sorted digests, held
    and needed apart, not both empty, at most MAX_FILES."""
    if FILES_KEY not in raw:
        return (), ()
    files = _map(raw[FILES_KEY], FILES_KEYS, "files")
    held, needed = _digests(files["held"], "files held"), _digests(files["needed"], "files needed")
    if not held and not needed:
        raise _Bad("files lists no digest (a receipt with none has no files)")
    if len(held) + len(needed) > MAX_FILES:
        raise _Bad(f"files lists more than {MAX_FILES} digests")
    if set(held) & set(needed):
        raise _Bad("a file digest is both held and needed")
    return held, needed


def _signer_of(raw: Any) -> PublicKey:
    """The issuer key from the body, only as far as needed to check the signature."""
    try:
        body = _need(raw, dict, "body")
        if body.get("v") != FORMAT_VERSION or type(body.get("v")) is not int:
            raise ReceiptCorrupt(
                "is a receipt of a format version this release cannot read "
                "(written by a newer bundlekit?)"
            )
        issuer = _map(body.get("issuer"), ISSUER_KEYS, "issuer")
        ed25519 = _need(issuer["ed25519"], bytes, "issuer key")
        site = _text(issuer["site"], "issuer site", MAX_SITE)
        recipient = _need(issuer["age_recipient"], str, "issuer recipient")
        pub = PublicKey(site, age.decode_recipient(recipient), ed25519)
    except ReceiptError:
        raise
    except (_Bad, KeyError, ValueError, TypeError) as e:
        raise ReceiptCorrupt(f"is damaged: {e}") from None
    except Exception:  # a recipient string that trips the Bech32 decoder in odd ways
        raise ReceiptCorrupt("is damaged: the issuer key does not decode") from None
    if issuer["fingerprint"] != pub.fingerprint:
        raise ReceiptCorrupt("is damaged: the issuer fingerprint does not match its key")
    return pub


def _parse_body(body: bytes, raw: dict[str, Any], signer: PublicKey) -> Receipt:
    try:
        _need(raw, dict, "body")
        if set(raw) - {FILES_KEY} != BODY_KEYS:
            raise _Bad("body does not have exactly the version-2 fields")
        files_held, files_needed = _parse_files(raw)
        subject = _map(raw["subject"], SUBJECT_KEYS, "subject")
        subject_site = _text(subject["site"], "subject site", MAX_SITE)
        subject_fp = _need(subject["fingerprint"], str, "subject fingerprint")
        if not _FINGERPRINT.fullmatch(subject_fp):
            raise _Bad("subject fingerprint is malformed")
        created_text = _need(raw["created"], str, "created")
        if not _CREATED.fullmatch(created_text):
            raise _Bad("created is not a UTC timestamp")
        try:
            created = dt.datetime.strptime(created_text, "%Y-%m-%dT%H:%M:%S.%fZ")
        except ValueError:
            raise _Bad("created is not a valid date") from None
        entries = tuple(
            _parse_entry(e, i) for i, e in enumerate(_need(raw["entries"], list, "entries"))
        )
        if sum(len(e.outcomes) for e in entries) > limits.MAX_RECEIPT_RUNS or sum(
            len({r.reason for r in e.outcomes if r.reason}) for e in entries
        ) > limits.MAX_RECEIPT_REASONS:
            raise _Bad("more outcome runs or reasons than one receipt may hold")
        if len({e.bundle_id for e in entries}) != len(entries):
            raise _Bad("a bundle id appears twice")
        receipt = Receipt(
            receipt_id=_uuid(raw["id"], "id"),
            issuer=signer,
            subject_site=subject_site,
            subject_fingerprint=subject_fp,
            created=created.replace(tzinfo=dt.UTC),
            entries=entries,
            highest_contiguous_seq=_count(raw["contiguous"], "contiguous", 0),
            files_held=files_held,
            files_needed=files_needed,
        )
    except _Bad as e:
        raise ReceiptCorrupt(f"is damaged: {e}") from None
    # One rule instead of many: re-encoding must give the very same bytes
    # (sorted keys, shortest encodings, entries in order, no duplicate keys).
    if _packb(raw) != body or list(entries) != sorted(
        entries, key=lambda e: (e.seq, str(e.bundle_id))
    ):
        raise ReceiptCorrupt("is damaged: its body is not in canonical form")
    return receipt


def decode_receipt(
    data: bytes,
    *,
    trusted_issuers: Sequence[PublicKey],
    me: PublicKey | Identity,
    path: str | os.PathLike[str] | None = None,
) -> Receipt:
    """Check and decode receipt bytes; see :func:`read_receipt`."""
    try:
        body, signature = _split(data)
        raw = _unpack(body)
        signer = _signer_of(raw)
        # Authenticate before interpreting anything else in the body.
        if not signer.verify(signature, SIGNATURE_CONTEXT + body):
            raise ReceiptBadSignature(
                "bad signature: the receipt was altered or forged after it was signed"
            )
        receipt = _parse_body(body, raw, signer)
        keyed = [k for k in trusted_issuers if k.same_key(signer)]
        trusted = next((k for k in keyed if k.site == signer.site), None)
        if keyed and trusted is None:
            # Identity binding (docs/SECURITY.md): the issuer's name must be the
            # name its key is trusted as.
            raise ReceiptIssuerMismatch(
                f"names its issuer site {signer.site!r}, but the key that signed it "
                f"({signer.fingerprint}) is trusted as site {keyed[0].site!r}: refused"
            )
        if trusted is None:
            raise ReceiptUntrusted(
                f"signed by a key we do not trust (site {signer.site!r}, "
                f"fingerprint {signer.fingerprint})"
            )
        mine = me.public if isinstance(me, Identity) else me
        if receipt.subject_fingerprint != mine.fingerprint:
            raise ReceiptNotForUs(
                f"this receipt is for site {receipt.subject_site!r} "
                f"({receipt.subject_fingerprint}), not for us ({mine.site!r})"
            )
    except ReceiptError as e:
        if path is not None:
            e.with_path(path)
        raise
    return Receipt(
        receipt_id=receipt.receipt_id,
        issuer=trusted,
        subject_site=receipt.subject_site,
        subject_fingerprint=receipt.subject_fingerprint,
        created=receipt.created,
        entries=receipt.entries,
        highest_contiguous_seq=receipt.highest_contiguous_seq,
        path=Path(path) if path is not None else None,
        files_held=receipt.files_held,
        files_needed=receipt.files_needed,
    )


def read_receipt(
    path: str | os.PathLike[str],
    *,
    trusted_issuers: Sequence[PublicKey],
    me: PublicKey | Identity,
) -> Receipt:
    """Read and verify a receipt file meant for ``me`` from one of ``trusted_issuers``.

    Raises a :class:`ReceiptError` (message names the file) when it is not a
    receipt or damaged (:class:`ReceiptCorrupt`), truncated
    (:class:`ReceiptTruncated`), badly signed (:class:`ReceiptBadSignature`),
    signed by a key we do not trust (:class:`ReceiptUntrusted`), or written
    for another site (:class:`ReceiptNotForUs`); a file that cannot be read
    at all raises :class:`ReceiptError` itself.  Each has its own ``code``.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_RECEIPT_SIZE + 1)
    except IsADirectoryError:
        raise ReceiptError("is a folder, not a receipt", path=path) from None
    except OSError as e:
        raise ReceiptError(f"cannot be read ({e.strerror or e})", path=path) from e
    return decode_receipt(data, trusted_issuers=trusted_issuers, me=me, path=path)


def is_receipt_name(name: str) -> bool:
    """Whether ``name`` may be a receipt (not hidden, not a temporary file)."""
    return name.lower().endswith(RECEIPT_SUFFIX) and not name.startswith((".", "~"))


def peek_receipt(path: str | os.PathLike[str]) -> Receipt:
    """A receipt whose framing, body and signature (by the issuer key it names)
    check, with no trust decision.

    For sorting and routing only: the order in which to read a folder of
    receipts, the site a receipt this machine wrote is addressed to.  Anything
    that acts on a receipt uses :func:`read_receipt`.  Raises
    :class:`ReceiptError` for a file that is not a whole, well-signed receipt.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_RECEIPT_SIZE + 1)
    except OSError as e:
        raise ReceiptError(f"cannot be read ({e.strerror or e})", path=path) from e
    try:
        body, signature = _split(data)
        raw = _unpack(body)
        signer = _signer_of(raw)
        if not signer.verify(signature, SIGNATURE_CONTEXT + body):
            raise ReceiptBadSignature("bad signature: the receipt was altered or forged")
        receipt = _parse_body(body, raw, signer)
    except ReceiptError as e:
        raise e.with_path(path) from None
    return receipt


def receipt_subject(path: str | os.PathLike[str]) -> tuple[str, str]:
    """(site, key fingerprint) a receipt file is addressed to (:func:`peek_receipt`:
    it is for sorting receipts this machine wrote itself; a REST token bound to one
    site sees only that site's receipts)."""
    receipt = peek_receipt(path)
    return receipt.subject_site, receipt.subject_fingerprint


def in_created_order(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """``paths`` in the order their receipts were signed (``created``, then receipt
    id, then file name), so a folder read twice is read the same way: the names
    sort two receipts of the same second by a random suffix.  A file that is not
    a well-signed receipt goes last, by name (reading it then says what is wrong)."""
    keyed = []
    for p in map(Path, paths):
        try:
            r = peek_receipt(p)
        except ReceiptError:
            keyed.append(((1, dt.datetime.min.replace(tzinfo=dt.UTC), ""), p))
            continue
        keyed.append(((0, r.created, str(r.receipt_id)), p))
    return [p for _, p in sorted(keyed, key=lambda kp: (kp[0], kp[1].name, str(kp[1])))]
