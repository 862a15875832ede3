"""Receipts: round trip, and every way a receipt can be wrong raises ReceiptError."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import struct
import uuid

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlekit.errors import (
    ReceiptBadSignature,
    ReceiptCorrupt,
    ReceiptError,
    ReceiptNotForUs,
    ReceiptTruncated,
    ReceiptUntrusted,
    WriteFailed,
)
from bundlekit.keys import Identity
from bundlekit.receipt import (
    END_MAGIC,
    MAGIC,
    SIGNATURE_CONTEXT,
    Receipt,
    ReceiptEntry,
    Run,
    Runs,
    decode_receipt,
    encode_receipt,
    highest_contiguous,
    in_created_order,
    peek_receipt,
    read_receipt,
    receipt_file_name,
    split_files,
    write_receipt,
)

SERVER = Identity.generate("Central Server")
SITE_A = Identity.generate("São Tomé clinic")
SITE_B = Identity.generate("site-b")
WHEN = dt.datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=dt.UTC)


def entry(seq: int, status: str = "applied", reason: str = "", records: int = 3) -> ReceiptEntry:
    return ReceiptEntry(
        bundle_id=uuid.UUID(int=seq),
        seq=seq,
        digest=bytes([seq]) * 32,
        status=status,
        records=records,
        reason=reason,
    )


def small_receipt() -> bytes:
    return encode_receipt(
        issuer=SERVER,
        subject=SITE_A.public,
        entries=[entry(1)],
        created=WHEN,
        receipt_id=uuid.UUID(int=7),
    )


def decode(data: bytes, **kw) -> Receipt:
    kw.setdefault("trusted_issuers", [SERVER.public])
    kw.setdefault("me", SITE_A)
    return decode_receipt(data, **kw)


def test_round_trip_through_a_file(tmp_path):
    entries = [
        entry(2, "duplicate"),
        entry(1),
        entry(3, "held", records=0),
        entry(4, "quarantined", "conflict on clinic.patient 42"),
        entry(5, "rejected", "payload digest mismatch"),
    ]
    path = write_receipt(
        tmp_path, issuer=SERVER, subject=SITE_A.public, entries=entries, created=WHEN
    )
    assert path.parent == tmp_path
    assert [p.name for p in tmp_path.iterdir()] == [path.name]

    receipt = read_receipt(path, trusted_issuers=[SITE_B.public, SERVER.public], me=SITE_A.public)
    assert receipt.path == path
    assert receipt.issuer == SERVER.public
    assert receipt.subject_site == SITE_A.site
    assert receipt.subject_fingerprint == SITE_A.public.fingerprint
    assert receipt.created == WHEN
    assert [e.seq for e in receipt.entries] == [1, 2, 3, 4, 5]
    # A writer given no outcomes reports every transaction with the bundle's own.
    assert receipt.entries[3] == dataclasses.replace(
        entries[3], outcomes=(Run(0, 3, "quarantined"),)
    )
    assert receipt.entries[1].outcomes == (Run(0, 3, "duplicate"),)
    assert receipt.entries[2].outcomes == ()  # no records, nothing to say
    assert receipt.entries[4].outcomes == ()  # rejected: the server keeps nothing
    assert receipt.highest_contiguous_seq == 4  # quarantined is held; rejected is not
    assert [e.seq for e in receipt.rejected] == [5]
    assert [e.seq for e in receipt.held] == [1, 2, 3, 4]


def test_contiguous_from_the_ledger_wins():
    data = encode_receipt(
        issuer=SERVER, subject=SITE_A.public, entries=[entry(9)], highest_contiguous_seq=9
    )
    assert decode(data).highest_contiguous_seq == 9
    assert highest_contiguous([entry(9)]) == 0
    assert highest_contiguous([entry(9)], start=8) == 9


def test_layout_matches_the_spec():
    data = small_receipt()
    assert data.startswith(MAGIC) and data.endswith(END_MAGIC)
    (body_len,) = struct.unpack(">I", data[-len(END_MAGIC) - 4 : -len(END_MAGIC)])
    body = data[len(MAGIC) : len(MAGIC) + body_len]
    signature = data[len(MAGIC) + body_len : len(MAGIC) + body_len + 64]
    assert len(data) == len(MAGIC) + body_len + 64 + 4 + len(END_MAGIC)
    assert SERVER.public.verify(signature, SIGNATURE_CONTEXT + body)
    raw = msgpack.unpackb(body)
    assert list(raw) == sorted(raw)
    assert raw["v"] == 2 and raw["id"] == str(uuid.UUID(int=7))
    assert raw["created"] == "2025-03-04T05:06:07.890123Z"
    assert raw["subject"] == {"site": SITE_A.site, "fingerprint": SITE_A.public.fingerprint}
    assert raw["entries"][0]["digest"] == bytes([1]) * 32
    assert small_receipt() == data, "deterministic given id and time"


def test_file_name_is_safe_everywhere():
    name = receipt_file_name(
        "Central Server", "São Tomé/clinic", WHEN, uuid.UUID(int=0xABCDEF12 << 96)
    )
    assert name == "receipt-central-server-sao-tome-clinic-20250304t050607z-abcdef12.receipt"
    assert re.fullmatch(r"[a-z0-9.-]+", name) and name == name.lower()


def test_every_byte_flip_is_rejected():
    data = small_receipt()
    decode(data)
    for i in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[i] ^= 1 << bit
            with pytest.raises(ReceiptError):
                decode(bytes(damaged))


def test_every_truncation_is_rejected():
    data = small_receipt()
    for n in range(len(data)):
        with pytest.raises(ReceiptError):
            decode(data[:n])
    with pytest.raises(ReceiptError):
        decode(data + b"\0")


def test_forged_receipt_is_rejected():
    """Someone re-signs an altered receipt with their own key."""
    forger = Identity.generate("Central Server")
    data = encode_receipt(issuer=forger, subject=SITE_A.public, entries=[entry(1)])
    with pytest.raises(ReceiptError, match="signed by a key we do not trust"):
        decode(data)


def test_body_swapped_under_a_genuine_signature_is_rejected():
    genuine = small_receipt()
    other = encode_receipt(
        issuer=SERVER, subject=SITE_A.public, entries=[entry(1), entry(2)], created=WHEN
    )
    body_len_g = len(genuine) - len(MAGIC) - 64 - 4 - len(END_MAGIC)
    body_len_o = len(other) - len(MAGIC) - 64 - 4 - len(END_MAGIC)
    spliced = (
        MAGIC
        + other[len(MAGIC) : len(MAGIC) + body_len_o]
        + genuine[len(MAGIC) + body_len_g : len(MAGIC) + body_len_g + 64]
        + struct.pack(">I", body_len_o)
        + END_MAGIC
    )
    with pytest.raises(ReceiptError, match="bad signature"):
        decode(spliced)


def test_receipt_for_another_site_is_rejected(tmp_path):
    path = write_receipt(tmp_path, issuer=SERVER, subject=SITE_B.public, entries=[entry(1)])
    with pytest.raises(ReceiptError, match="this receipt is for site 'site-b'") as info:
        read_receipt(path, trusted_issuers=[SERVER.public], me=SITE_A)
    assert str(info.value).startswith(str(path))


def test_no_trusted_issuers_means_nothing_is_trusted():
    with pytest.raises(ReceiptError, match="do not trust"):
        decode(small_receipt(), trusted_issuers=[])


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "is empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "is not a receipt"),
        (MAGIC[:10], "ends early"),
        (b"bundlekit.org/v7/receipt\n" + b"\0" * 200, "format version"),
        (b"bundlekit.org/v1\n" + b"\0" * 200, "is not a receipt"),  # a bundle
        (b"bundlekit.org/v1/receipt\n" + b"\0" * 200, "version-1 receipt"),
    ],
)
def test_messages_name_the_file(tmp_path, content, message):
    path = tmp_path / "x.receipt"
    path.write_bytes(content)
    with pytest.raises(ReceiptError, match=message) as info:
        read_receipt(path, trusted_issuers=[SERVER.public], me=SITE_A)
    assert str(info.value).startswith(f"{path}: ")
    assert "\n" not in str(info.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ReceiptError, match="cannot be read"):
        read_receipt(tmp_path / "nope.receipt", trusted_issuers=[], me=SITE_A)
    with pytest.raises(ReceiptError, match="folder"):
        read_receipt(tmp_path, trusted_issuers=[], me=SITE_A)


def _resign(body: dict) -> bytes:
    """A well-signed receipt with an arbitrary body: tests the checks after the signature."""
    raw = msgpack.packb(body, use_bin_type=True)
    sig = SERVER.sign(SIGNATURE_CONTEXT + raw)
    return MAGIC + raw + sig + struct.pack(">I", len(raw)) + END_MAGIC


def _body() -> dict:
    data = small_receipt()
    body_len = len(data) - len(MAGIC) - 64 - 4 - len(END_MAGIC)
    return msgpack.unpackb(data[len(MAGIC) : len(MAGIC) + body_len])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.update(v=1),
        lambda b: b.update(v=3),
        lambda b: b.update(extra=1),
        lambda b: b.pop("contiguous"),
        lambda b: b.update(contiguous=-1),
        lambda b: b.update(contiguous=1.0),
        lambda b: b.update(created="2025-03-04 05:06:07"),
        lambda b: b.update(created="2025-02-30T05:06:07.000000Z"),
        lambda b: b.update(id="not-a-uuid"),
        lambda b: b.update(id=str(uuid.UUID(int=0xABC)).upper()),
        lambda b: b["entries"][0].update(status="lost"),
        lambda b: b["entries"][0].update(status="rejected", reason=""),
        lambda b: b["entries"][0].update(digest=b"short"),
        lambda b: b["entries"][0].update(seq=0),
        lambda b: b["entries"][0].update(seq=True),
        lambda b: b["entries"][0].update(reason="two\nlines"),
        lambda b: b["entries"].append(dict(b["entries"][0])),
        lambda b: b["subject"].update(fingerprint="abc"),
        lambda b: b["issuer"].update(fingerprint=SITE_B.public.fingerprint),
        lambda b: b.update(entries={}),
    ],
)
def test_strict_body_checks(mutate):
    body = _body()
    mutate(body)
    with pytest.raises(ReceiptError):
        decode(_resign(body))


def test_non_canonical_body_is_rejected():
    body = _body()
    reordered = dict(reversed(list(body.items())))
    with pytest.raises(ReceiptError, match="canonical"):
        decode(_resign(reordered))


def test_writer_refuses_misuse(tmp_path):
    with pytest.raises(ValueError):
        encode_receipt(issuer=SERVER, subject=SITE_A.public, entries=[entry(1, "lost")])
    with pytest.raises(ValueError):
        encode_receipt(issuer=SERVER, subject=SITE_A.public, entries=[entry(1, "rejected")])
    with pytest.raises(ValueError):
        encode_receipt(issuer=SERVER, subject=SITE_A.public, entries=[entry(1), entry(1)])
    with pytest.raises(ValueError):
        encode_receipt(
            issuer=SERVER, subject=SITE_A.public, entries=[], created=dt.datetime(2025, 1, 1)
        )
    with pytest.raises(WriteFailed):
        write_receipt(tmp_path / "gone", issuer=SERVER, subject=SITE_A.public, entries=[])


def test_long_multiline_reason_is_folded_to_one_short_line():
    data = encode_receipt(
        issuer=SERVER,
        subject=SITE_A.public,
        entries=[entry(1, "rejected", "Traceback:\n" + "x" * 1000)],
    )
    reason = decode(data).entries[0].reason
    assert "\n" not in reason and len(reason) == 200


def test_mapping_entries_are_accepted():
    data = encode_receipt(
        issuer=SERVER,
        subject=SITE_A.public,
        entries=[{"bundle_id": uuid.UUID(int=1), "seq": 1, "digest": b"\1" * 32, "status": "held"}],
    )
    assert decode(data).entries[0].records == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_receipt_error(data):
    with pytest.raises(ReceiptError):
        decode(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bodies_in_valid_framing_raise_only_receipt_error(body):
    data = MAGIC + body + b"\0" * 64 + struct.pack(">I", len(body)) + END_MAGIC
    with pytest.raises(ReceiptError):
        decode(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_edits_of_a_real_receipt_raise_only_receipt_error(draw):
    data = bytearray(small_receipt())
    for _ in range(draw.draw(st.integers(1, 4))):
        i = draw.draw(st.integers(0, len(data) - 1))
        data[i] = draw.draw(st.integers(0, 255).filter(lambda v, i=i: v != data[i]))
    with pytest.raises(ReceiptError):
        decode(bytes(data))


# --- each refusal has its own class and code, all of them ReceiptErrors


def _spliced_signature() -> bytes:
    genuine = small_receipt()
    sig_at = len(genuine) - len(END_MAGIC) - 4 - 64
    return genuine[:sig_at] + bytes(64) + genuine[sig_at + 64 :]


@pytest.mark.parametrize(
    ("make", "error", "code"),
    [
        (lambda: b"", ReceiptCorrupt, "receipt-corrupt"),
        (lambda: b"\x89PNG\r\n\x1a\n" + b"\0" * 200, ReceiptCorrupt, "receipt-corrupt"),
        (lambda: b"bundlekit.org/v7/receipt\n" + b"\0" * 200, ReceiptCorrupt, "receipt-corrupt"),
        (lambda: _resign({**_body(), "v": 3}), ReceiptCorrupt, "receipt-corrupt"),
        (lambda: _resign({**_body(), "contiguous": -1}), ReceiptCorrupt, "receipt-corrupt"),
        (lambda: MAGIC[:10], ReceiptTruncated, "receipt-truncated"),
        (lambda: small_receipt()[:-1], ReceiptTruncated, "receipt-truncated"),
        (lambda: small_receipt()[:200], ReceiptTruncated, "receipt-truncated"),
        (_spliced_signature, ReceiptBadSignature, "receipt-bad-signature"),
        (lambda: encode_receipt(issuer=Identity.generate("Central Server"), subject=SITE_A.public,
                                entries=[entry(1)]), ReceiptUntrusted, "receipt-untrusted"),
        (lambda: encode_receipt(issuer=SERVER, subject=SITE_B.public, entries=[entry(1)]),
         ReceiptNotForUs, "receipt-not-for-us"),
    ],
)
def test_each_refusal_has_its_own_class_and_code(make, error, code):
    with pytest.raises(ReceiptError) as info:
        decode(make())
    assert type(info.value) is error and info.value.code == code


def test_receipt_error_classes_keep_one_base():
    for cls in (ReceiptCorrupt, ReceiptTruncated, ReceiptBadSignature, ReceiptUntrusted,
                ReceiptNotForUs):
        assert issubclass(cls, ReceiptError) and cls.code.startswith("receipt-")
    # Like TruncatedBundle and BadSignature under CorruptBundle.
    assert issubclass(ReceiptTruncated, ReceiptCorrupt)
    assert issubclass(ReceiptBadSignature, ReceiptCorrupt)
    assert ReceiptError.code == "bad-receipt"  # what an unreadable file still raises


# --- per-transaction outcomes (RECEIPTS.md 3.5)


def mixed(seq: int = 1) -> ReceiptEntry:
    return ReceiptEntry(
        bundle_id=uuid.UUID(int=seq), seq=seq, digest=bytes([seq]) * 32, status="applied",
        records=10,
        outcomes=(
            Run(0, 4, "applied"),
            Run(4, 1, "failed", "IntegrityError: UNIQUE constraint failed: member.line"),
            Run(5, 2, "applied"),
            Run(7, 1, "superseded", "a later change of this object was applied first"),
            Run(8, 1, "failed", "IntegrityError: UNIQUE constraint failed: member.line"),
            Run(9, 1, "conflict", "transaction id already used with other content"),
        ),
    )


def test_outcomes_round_trip_with_each_reason_once():
    data = encode_receipt(issuer=SERVER, subject=SITE_A.public, entries=[mixed()])
    (got,) = decode(data).entries
    assert got == mixed()
    assert got.counts() == {"applied": 6, "failed": 2, "superseded": 1, "conflict": 1}
    raw = _body_of(data)["entries"][0]
    assert len(raw["reasons"]) == 3  # the unique-clash reason is written once
    assert raw["outcomes"][0] == [0, 4, "applied"]


def _body_of(data: bytes) -> dict:
    body_len = len(data) - len(MAGIC) - 64 - 4 - len(END_MAGIC)
    return msgpack.unpackb(data[len(MAGIC) : len(MAGIC) + body_len])


def test_a_hundred_thousand_transactions_keep_a_small_receipt():
    runs = Runs()
    for i in range(100_000):
        runs.add("failed" if i % 1000 == 7 else "applied",
                 f"IntegrityError: duplicate key value {i}" if i % 1000 == 7 else "")
    entry_ = ReceiptEntry(uuid.UUID(int=1), 1, b"\1" * 32, "applied", records=100_000,
                          outcomes=runs.result())
    data = encode_receipt(issuer=SERVER, subject=SITE_A.public, entries=[entry_])
    assert len(data) < 16_000
    (got,) = decode(data).entries
    assert got.counts() == {"applied": 99_900, "failed": 100}
    assert len({r.reason for r in got.outcomes if r.outcome == "failed"}) == 99  # capped


def test_past_max_runs_the_rest_is_unlisted_and_kept():
    from bundlekit import receipt as receipt_module

    runs = Runs()
    n = 2 * receipt_module.MAX_RUNS
    for i in range(n):
        runs.add("failed" if i % 2 else "applied")
    result = runs.result()
    assert len(result) == receipt_module.MAX_RUNS
    assert result[-1].outcome == "unlisted" and not result[-1].server_holds
    assert sum(r.count for r in result) == n


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.update(outcomes=[]),  # 10 records, no runs
        lambda e: e["outcomes"].pop(),  # does not cover them all
        lambda e: e["outcomes"][0].__setitem__(0, 1),  # does not start at 0
        lambda e: e["outcomes"][0].__setitem__(2, "lost"),  # unknown outcome
        lambda e: e["outcomes"][1].__setitem__(3, 7),  # reason index out of range
        lambda e: e["outcomes"].__setitem__(2, [5, 2, "failed", 0]),  # equal to its neighbour
        lambda e: e["reasons"].append("unused"),
        lambda e: e["outcomes"][1].__setitem__(3, 1),  # reasons not in order of first use
        lambda e: e.update(status="rejected", reason="gone"),  # rejected lists outcomes
        lambda e: e["outcomes"][1].append(0),  # five items
    ],
)
def test_outcome_runs_are_checked(mutate):
    body = _body_of(encode_receipt(issuer=SERVER, subject=SITE_A.public, entries=[mixed()]))
    mutate(body["entries"][0])
    with pytest.raises(ReceiptCorrupt):
        decode(_resign(body))


def test_neighbouring_equal_runs_are_not_canonical():
    body = _body_of(encode_receipt(issuer=SERVER, subject=SITE_A.public, entries=[entry(1)]))
    body["entries"][0]["outcomes"] = [[0, 1, "applied"], [1, 2, "applied"]]
    with pytest.raises(ReceiptCorrupt, match="one"):
        decode(_resign(body))


def test_writer_refuses_runs_that_do_not_cover_the_bundle():
    bad = dataclasses.replace(mixed(), records=11)
    with pytest.raises(ValueError):
        encode_receipt(issuer=SERVER, subject=SITE_A.public, entries=[bad])


def many_runs(seq: int, n: int) -> ReceiptEntry:
    runs = Runs()
    for i in range(n):
        runs.add("failed" if i % 2 else "applied", f"reason {i % 7}" if i % 2 else "")
    return ReceiptEntry(uuid.UUID(int=seq), seq, bytes([seq]) * 32, "applied", records=n,
                        outcomes=runs.result())


def test_split_entries_fits_every_receipt_within_the_readers_bounds():
    from bundlekit import limits
    from bundlekit.receipt import split_entries

    entries = [many_runs(seq, 40_000) for seq in range(1, 7)]  # 240,000 runs in all
    groups = list(split_entries(entries))
    assert len(groups) > 1 and [e for g in groups for e in g] == entries
    for group in groups:
        assert sum(len(e.outcomes) for e in group) <= limits.MAX_RECEIPT_RUNS
        decoded = decode(encode_receipt(issuer=SERVER, subject=SITE_A.public, entries=group))
        assert [e.seq for e in decoded.entries] == [e.seq for e in group]
    with pytest.raises(ValueError, match="write several"):
        encode_receipt(issuer=SERVER, subject=SITE_A.public, entries=entries)


def _uid(first: int) -> uuid.UUID:
    return uuid.UUID(f"{first}0000000-0000-4000-8000-000000000000")


def test_a_folder_is_read_in_signed_creation_order(tmp_path):
    """Two receipts of the same second sort by a random suffix in their names; the
    order they are read in is the order they were signed, then their ids."""
    same_second = [WHEN.replace(microsecond=500), WHEN.replace(microsecond=100)]
    written = []
    for created, rid in zip(same_second, (_uid(3), _uid(2)), strict=True):
        path = write_receipt(tmp_path, issuer=SERVER, subject=SITE_A.public,
                             entries=[entry(1)], created=created, receipt_id=rid)
        written.append(path)
    # Renamed so that name order is the reverse of signing order.
    later, earlier = written
    later = later.rename(tmp_path / "receipt-a.receipt")
    earlier = earlier.rename(tmp_path / "receipt-b.receipt")
    tie = write_receipt(tmp_path, issuer=SERVER, subject=SITE_A.public, entries=[entry(1)],
                        created=same_second[1], receipt_id=_uid(1))
    junk = tmp_path / "receipt-0.receipt"
    junk.write_bytes(b"not a receipt")
    ordered = in_created_order(sorted(tmp_path.iterdir()))
    assert ordered == [tie, earlier, later, junk]
    assert in_created_order(reversed(ordered)) == ordered
    assert peek_receipt(earlier).created == same_second[1]


# ------------------------------------------------ RECEIPTS.md §3.7: which files the issuer holds


def digest(n: int) -> bytes:
    return n.to_bytes(32, "big")


def test_files_held_and_needed_round_trip_sorted():
    data = encode_receipt(issuer=SERVER, subject=SITE_A.public, entries=[entry(1)],
                          created=WHEN, files_held=[digest(3), digest(1), digest(3)],
                          files_needed=[digest(2)])
    receipt = decode(data)
    assert receipt.files_held == (digest(1), digest(3))
    assert receipt.files_needed == (digest(2),)
    assert _body_of(data)["files"] == {"held": [digest(1), digest(3)], "needed": [digest(2)]}


def test_a_receipt_without_files_has_no_files_key_and_reads_as_before():
    """Backward compatible: a version-2 receipt written before §3.7 (no ``files``)
    is read, and says nothing of files; one with nothing to say is written alike."""
    data = small_receipt()
    assert "files" not in _body_of(data)
    receipt = decode(data)
    assert receipt.files_held == () and receipt.files_needed == ()


def test_ten_thousand_files_of_one_bundle_fit_and_more_are_split():
    """A bundle may reference 10,000 files: one receipt; 45,001 need three."""
    held = [digest(n) for n in range(10_000)]
    data = encode_receipt(issuer=SERVER, subject=SITE_A.public, entries=[entry(1)],
                          files_held=held)
    assert len(data) < 400_000 and len(decode(data).files_held) == 10_000
    groups = split_files([digest(n) for n in range(45_000)], [digest(7), digest(50_000)])
    assert [len(h) + len(n) for h, n in groups] == [20_000, 20_000, 5_001]
    assert groups[0][1] == (digest(7), digest(50_000))  # the needed ones go first, never held
    assert all(digest(7) not in h for h, _ in groups)
    for have, need in groups:
        got = decode(encode_receipt(issuer=SERVER, subject=SITE_A.public, entries=[],
                                    files_held=have, files_needed=need))
        assert (got.files_held, got.files_needed) == (have, need)
    with pytest.raises(ValueError, match="split_files"):
        encode_receipt(issuer=SERVER, subject=SITE_A.public, entries=[],
                       files_held=[digest(n) for n in range(20_001)])
    with pytest.raises(ValueError, match="both"):
        encode_receipt(issuer=SERVER, subject=SITE_A.public, entries=[],
                       files_held=[digest(1)], files_needed=[digest(1)])


@pytest.mark.parametrize(
    "files",
    [
        {"held": [digest(2), digest(1)], "needed": []},  # not sorted
        {"held": [digest(1), digest(1)], "needed": []},  # twice
        {"held": [digest(1)], "needed": [digest(1)]},  # held and needed
        {"held": [], "needed": []},  # nothing: the key is left out instead
        {"held": [b"short"], "needed": []},
        {"held": [digest(1)]},
        {"held": [digest(1)], "needed": [], "extra": []},
        {"held": "x", "needed": []},
        [digest(1)],
        {"held": [digest(n) for n in range(20_001)], "needed": []},  # over MAX_FILES
    ],
)
def test_strict_files_checks(files):
    body = _body()
    body["files"] = files
    with pytest.raises(ReceiptCorrupt):
        decode(_resign(body))


def test_a_hostile_receipt_claiming_files_is_refused_like_any_other():
    """Only a trusted issuer's receipt may say that a file is held (a site prunes
    its copy on that word): the same files signed by another key are refused."""
    data = encode_receipt(issuer=SITE_B, subject=SITE_A.public, entries=[],
                          files_held=[digest(1)])
    with pytest.raises(ReceiptUntrusted):
        decode(data)
    tampered = encode_receipt(issuer=SERVER, subject=SITE_A.public, entries=[],
                              files_held=[digest(1)])
    flipped = tampered.replace(digest(1), digest(2))
    with pytest.raises(ReceiptBadSignature):
        decode(flipped)
