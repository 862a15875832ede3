"""Run the language-neutral test vectors in testdata/vectors/ (layout: its README.md).

Each vector file is one test: a ``key: value`` header, a blank line, the raw
bundle or receipt.  The outcome is the ``code`` of the BundleError raised (never
its message) or ``ok``; for ``ok`` vectors the records, digest and chain fields
are checked too.  testdata/generate_vectors.py wrote the files; tests never run it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from bundlekit import age, blobs
from bundlekit.age import bech32
from bundlekit.errors import BundleError
from bundlekit.keys import VERIFY_KEY_HRP, Identity, PublicKey
from bundlekit.reader import open_bundle, verify
from bundlekit.receipt import read_receipt
from bundlekit.records import to_jsonable

VECTORS = Path(__file__).resolve().parents[2] / "testdata" / "vectors"

#: FORMAT.md §9.3, spelled as bundlekit.errors' ``code`` attributes.
BUNDLE_CLASSES = frozenset({
    "ok", "not-a-bundle", "unsupported-version", "truncated", "corrupt", "bad-signature",
    "unknown-sender", "site-name-mismatch", "revoked-key", "not-a-recipient",
})
#: RECEIPTS.md §4 says only "refuse"; the vectors name why.  These are the
#: ``code`` attributes of bundlekit.errors' ReceiptError subclasses, checked exactly.
RECEIPT_CLASSES = frozenset({
    "ok", "receipt-truncated", "receipt-corrupt", "receipt-bad-signature",
    "receipt-untrusted", "receipt-issuer-mismatch", "receipt-not-for-us",
})

KEYS = frozenset({
    "file", "expect", "comment", "identity", "trusted", "revoked", "digest", "seq", "prev",
    "records", "schema", "trusted-issuer", "me", "receipt-id", "entries", "contiguous",
    "outcomes", "files", "files-held", "files-needed",
})
REPEATABLE = frozenset({"comment", "trusted", "revoked", "trusted-issuer", "files"})

#: Vectors whose expectation (per the spec) bundlekit's reader does not meet yet.
#: strict xfail: once the reader is fixed the test XPASSes, fails, and the entry goes.
KNOWN_DIVERGENCES: dict[str, str] = {}


class VectorMismatch(AssertionError):
    """A vector's outcome is not the one its header expects."""


@dataclass(frozen=True)
class Vector:
    name: str
    headers: dict[str, list[str]]
    body: bytes

    def one(self, key: str) -> str:
        (value,) = self.headers[key]
        return value

    def get(self, key: str) -> str | None:
        return self.one(key) if key in self.headers else None

    def many(self, key: str) -> list[str]:
        return self.headers.get(key, [])


def parse_vector(path: Path) -> Vector:
    data = path.read_bytes()
    end = data.find(b"\n\n")
    if end < 0:
        raise ValueError(f"{path.name}: no blank line after the header")
    headers: dict[str, list[str]] = {}
    for line in data[:end].decode("utf-8").split("\n"):
        key, sep, value = line.partition(": ")
        if not sep or key not in KEYS:
            raise ValueError(f"{path.name}: unknown or malformed header line {line!r}")
        if key in headers and key not in REPEATABLE:
            raise ValueError(f"{path.name}: header {key!r} appears twice")
        headers.setdefault(key, []).append(value)
    for key in ("file", "expect"):
        if key not in headers:
            raise ValueError(f"{path.name}: header {key!r} is missing")
    return Vector(path.name, headers, data[end + 2 :])


def records_hash(records: list[dict]) -> str:
    """SHA-256 of the canonical JSON-lines form (testdata/vectors/README.md)."""
    h = hashlib.sha256()
    for record in records:
        line = json.dumps(to_jsonable(record), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, allow_nan=False)
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()


def _public_key(line: str) -> PublicKey:
    """``<age recipient> <verify key>[ <site name>]``: the site name, where given, is
    the name the key is trusted as (a receipt's issuer must carry it)."""
    recipient, verify_key, *site = line.split(" ", 2)
    return PublicKey(site[0] if site else "vector key", age.decode_recipient(recipient),
                     _verify_key(verify_key))


def _verify_key(text: str) -> bytes:
    hrp, key = bech32.decode(text)
    assert hrp == VERIFY_KEY_HRP, text
    return key


# Revocation is by signing key (FORMAT.md §9.1; reader._matches with a PublicKey
# compares only ed25519), so the X25519 half of a revoked entry is a placeholder.
_PLACEHOLDER = bytes(32)


def _mismatch(v: Vector, what: str, want: object, got: object) -> VectorMismatch:
    return VectorMismatch(f"{v.name}: {what}: the vector expects {want!r}, bundlekit gives {got!r}")


def check_bundle(v: Vector, path: Path) -> None:
    expect = v.one("expect")
    if expect not in BUNDLE_CLASSES:
        raise ValueError(f"{v.name}: unknown class {expect!r}")
    # Opening needs only the age key; the signing seed is a placeholder.
    me = Identity("vector reader", age.decode_identity(v.one("identity")), _PLACEHOLDER)
    # A fingerprint, or a public key and the site it is trusted as.
    trusted = [t if " " not in t else _public_key(t) for t in v.many("trusted")] or None
    revoked = [PublicKey("revoked", _PLACEHOLDER, _verify_key(k)) for k in v.many("revoked")]

    try:
        verify(path, trusted, revoked)
        verified = "ok"
    except BundleError as e:
        verified = e.code
    try:
        with open_bundle(path, [me], trusted, revoked) as bundle:
            records = list(bundle)
        outcome = "ok"
    except BundleError as e:
        outcome = e.code
    if verified != "ok" and verified != outcome:
        raise VectorMismatch(f"{v.name}: verify() says {verified!r} but open_bundle() {outcome!r}")
    if outcome != expect:
        raise _mismatch(v, "outcome", expect, outcome)
    if outcome != "ok":
        return
    checks = {
        "records": records_hash(records),
        "digest": bundle.digest.hex(),
        "seq": str(bundle.manifest.seq),
        "prev": bundle.manifest.prev.hex() if bundle.manifest.prev else "none",
        "schema": json.dumps({k: list(steps) for k, steps in (bundle.manifest.schema or {}).items()},
                             sort_keys=True, separators=(",", ":"))
        if bundle.manifest.schema is not None else "none",
    }
    if "records" not in v.headers:
        raise ValueError(f"{v.name}: an ok bundle vector needs a records hash")
    for key, got in checks.items():
        want = v.get(key)
        if want is not None and want != got:
            raise _mismatch(v, key, want, got)
    # FORMAT.md §5.5: the files its chunk records put together, each checked.
    store = blobs.BlobStore(path.parent / f"{path.name}.files")
    for record in records:
        if blobs.is_blob(record):
            store.add(record)
    got_files = sorted(f"{name} {os.path.getsize(os.path.join(store.folder, name))}"
                       for name in os.listdir(store.folder) if name != "parts")
    if sorted(v.many("files")) != got_files:
        raise _mismatch(v, "files", sorted(v.many("files")), got_files)


def check_receipt(v: Vector, path: Path) -> None:
    expect = v.one("expect")
    if expect not in RECEIPT_CLASSES:
        raise ValueError(f"{v.name}: unknown class {expect!r}")
    trusted = [_public_key(k) for k in v.many("trusted-issuer")]
    try:
        receipt = read_receipt(path, trusted_issuers=trusted, me=_public_key(v.one("me")))
        outcome = "ok"
    except BundleError as e:
        outcome = e.code
    if outcome != expect:
        raise _mismatch(v, "outcome", expect, outcome)
    if outcome != "ok":
        return
    checks = {
        "receipt-id": str(receipt.receipt_id),
        "entries": str(len(receipt.entries)),
        "contiguous": str(receipt.highest_contiguous_seq),
        "outcomes": "; ".join(
            f"{e.seq}:{r.first}+{r.count} {r.outcome}" for e in receipt.entries for r in e.outcomes
        ),
        "files-held": " ".join(d.hex() for d in receipt.files_held) or "none",
        "files-needed": " ".join(d.hex() for d in receipt.files_needed) or "none",
    }
    for key, got in checks.items():
        want = v.get(key)
        if want is not None and want != got:
            raise _mismatch(v, key, want, got)


def check_vector(path: Path, workdir: Path) -> None:
    """Raise VectorMismatch unless bundlekit gives the outcome the vector expects.

    The file part is written to ``workdir`` and read from there, as from a stick.
    """
    v = parse_vector(path)
    kind = v.one("file")
    if kind not in ("bundle", "receipt"):
        raise ValueError(f"{v.name}: unknown file kind {kind!r}")
    file = workdir / f"vector.{kind}"
    file.write_bytes(v.body)
    if kind == "bundle":
        check_bundle(v, file)
    else:
        check_receipt(v, file)


def _vector_paths() -> list[Path]:
    return sorted(p for p in VECTORS.iterdir()
                  if p.is_file() and p.name != "README.md" and not p.name.startswith("."))


def _params() -> list:
    out = []
    for p in _vector_paths():
        marks = []
        if p.name in KNOWN_DIVERGENCES:
            marks.append(pytest.mark.xfail(raises=VectorMismatch, strict=True,
                                           reason=KNOWN_DIVERGENCES[p.name]))
        out.append(pytest.param(p, id=p.name, marks=marks))
    return out


@pytest.mark.parametrize("path", _params())
def test_vector(path, tmp_path):
    check_vector(path, tmp_path)


def test_vector_set_is_small_and_covers_every_class():
    paths = _vector_paths()
    vectors = [parse_vector(p) for p in paths]
    assert sum(p.stat().st_size for p in paths) < 200 * 1024
    seen = {(v.one("file"), v.one("expect")) for v in vectors}
    assert {c for f, c in seen if f == "bundle"} == BUNDLE_CLASSES
    assert {c for f, c in seen if f == "receipt"} == RECEIPT_CLASSES
    assert set(KNOWN_DIVERGENCES) <= {p.name for p in paths}
    readme = (VECTORS / "README.md").read_text(encoding="utf-8")
    for cls in BUNDLE_CLASSES | RECEIPT_CLASSES:
        assert f"`{cls}`" in readme, cls


def _edited(src: Path, dst_dir: Path, key: str, value: str) -> Path:
    """A copy of ``src`` with the header line ``key`` set to ``value``."""
    data = src.read_bytes()
    end = data.index(b"\n\n")
    lines = [
        f"{key}: {value}".encode() if line.startswith(key.encode() + b": ") else line
        for line in data[:end].split(b"\n")
    ]
    dst = dst_dir / src.name
    dst.write_bytes(b"\n".join(lines) + data[end:])
    return dst


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("bundle-ok-single-record", "expect", "corrupt"),
        ("bundle-truncated-in-manifest", "expect", "ok"),
        ("bundle-revoked-key", "expect", "unknown-sender"),
        ("bundle-ok-every-value-type", "records", "0" * 64),
        ("bundle-ok-chain-seq2", "prev", "0" * 64),
        ("receipt-ok", "expect", "receipt-not-for-us"),
        ("receipt-truncated", "expect", "ok"),
        ("receipt-ok", "contiguous", "1"),
        ("receipt-ok", "outcomes", "1:0+1 applied; 2:0+1 applied"),
    ],
)
def test_a_wrong_expectation_is_reported(tmp_path, name, key, value):
    check_vector(VECTORS / name, tmp_path)  # the original passes
    edited = tmp_path / "edited"
    edited.mkdir()
    with pytest.raises(VectorMismatch, match=name):
        check_vector(_edited(VECTORS / name, edited, key, value), tmp_path)


def test_an_unknown_header_key_is_refused(tmp_path):
    copy = tmp_path / "edited" / "bundle-ok-single-record"
    copy.parent.mkdir()
    shutil.copyfile(VECTORS / copy.name, copy)
    copy.write_bytes(b"expcet: ok\n" + copy.read_bytes())
    with pytest.raises(ValueError, match="unknown or malformed header"):
        check_vector(copy, tmp_path)
