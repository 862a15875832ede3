"""Write the language-neutral test vectors in testdata/vectors/ (layout: vectors/README.md).

Run by hand, from the repository root, after a deliberate change to the format:

    .venv/bin/python testdata/generate_vectors.py

Tests never run this: the vectors are generated once and committed, so a second
implementation reads the very same bytes.  Keys come from fixed secrets and
every ``created`` time is fixed, so signatures, receipts and the expected
records are the same on every run; the age file key and nonce, and the
``bundle_id`` that seal() draws, are random (the library has no seam for
them), so bundle bytes differ between runs while every expectation holds.

Valid bundles come from seal(); malformed ones from byte surgery on them, or,
for payloads that only a malicious sender would sign, from the library's own
parts (age.encrypt, Manifest, manifest.sign, container.trailer).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import struct
import sys
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgpack
import zstandard

from bundlekit import age, blobs, container, receipt
from bundlekit.keys import Identity, PublicKey
from bundlekit.manifest import Manifest, packb_canonical, sign
from bundlekit.records import to_jsonable
from bundlekit.writer import ChainLink, seal

OUT = Path(__file__).resolve().parent / "vectors"
CREATED = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
#: The schema a format-2 vector states (FORMAT.md 4.5).
SCHEMA = {"clinic": ["0001_initial", "0002_visit_note"], "sync": []}
_FOOTER = struct.Struct(">QI")


# --------------------------------------------------------------------------- keys


def fixed_identity(site: str, label: str) -> Identity:
    """An identity from fixed 32-byte secrets (SHA-256 of a label): same keys every run."""
    def secret(part: str) -> bytes:
        return hashlib.sha256(f"bundlekit test vectors/{label}/{part}".encode()).digest()

    return Identity(site, secret("x25519"), secret("ed25519"))


SITE_A = fixed_identity("Site A (Kisumu)", "site-a")
SITE_B = fixed_identity("Site B (Eldoret)", "site-b")
CENTRAL = fixed_identity("central-server", "central")
COMMUNITY = fixed_identity("community-server", "community")
HUB = fixed_identity("hub", "hub")
OUTSIDER = fixed_identity("outsider", "outsider")


def public_key_line(pub: PublicKey) -> str:
    return f"{pub.age_recipient} {pub.verify_key}"


# --------------------------------------------------------------------------- records


def schema_header(schema: dict) -> str:
    """The ``schema`` header: the manifest's schema as compact JSON, keys sorted."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


def records_hash(records: list[dict]) -> str:
    """SHA-256 of the canonical JSON-lines form (vectors/README.md, "Records hash")."""
    h = hashlib.sha256()
    for record in records:
        line = json.dumps(to_jsonable(record), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, allow_nan=False)
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()


SINGLE = [{"id": 1, "model": "survey.household", "name": "Amina", "members": 4}]

_PLUS_0545 = dt.timezone(dt.timedelta(hours=5, minutes=45))
_ODD_OFFSET = dt.timezone(-dt.timedelta(hours=3, seconds=30))
EVERY_TYPE = [
    {
        "id": uuid.UUID("6f1c2d3e-4a5b-4c6d-8e7f-8091a2b3c4d5"),
        "model": "vectors.native",
        "nil": None,
        "true": True,
        "false": False,
        "ints": [0, 1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536, 2**31, 2**32,
                 2**63 - 1, -(2**63), 2**64 - 1],
        "floats": [1.5, -0.25, 0.1],
        "non_finite": [float("inf"), float("-inf"), float("nan")],
        "str": "text",
        "bytes": b"\x00\x01\x7f\x80\xfe\xff",
        "empty_bytes": b"",
        "array": [1, "two", [3, [None]]],
        "empty_array": [],
        "map": {"b": {"c": None}, "a": 1},
        "empty_map": {},
        "int_keys": {2: "two", 1: "one"},
        "looks_like_a_tag": {"$uuid": "not a tag"},
    },
    {
        "id": 2,
        "model": "vectors.typed",
        "decimals": [Decimal("1.50"), Decimal("-0.00"), Decimal("1.2E-30"), Decimal("NaN"),
                     Decimal("-Infinity"), Decimal("12345678901234567890.123456789")],
        "uuid": uuid.UUID("00000000-0000-4000-8000-000000000000"),
        "datetime_naive": dt.datetime(2024, 5, 1, 12, 0, 0),
        "datetime_aware": dt.datetime(2024, 5, 1, 12, 0, 0, 500, tzinfo=_PLUS_0545),
        "datetime_utc": dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        "datetime_odd_offset": dt.datetime(2024, 2, 29, 0, 0, 0, tzinfo=_ODD_OFFSET),
        "date": dt.date(2024, 2, 29),
        "time_naive": dt.time(8, 30),
        "time_aware": dt.time(23, 59, 59, 999999, tzinfo=dt.UTC),
        "timedeltas": [dt.timedelta(days=-3, seconds=5, microseconds=7), dt.timedelta(0),
                       dt.timedelta(days=999999999, seconds=86399, microseconds=999999)],
        "bigints": [2**64, -(2**63) - 1, 10**40, -(10**40)],
    },
]

TEXT = [
    {
        "id": 3,
        "model": "vectors.text",
        "": "the empty key",
        "empty": "",
        "accents": "Zoë, Ñandú, Ørsted",
        "combining": "Zoe\u0308",  # not NFC: kept exactly as written
        "cjk": "日本語のテキスト",
        "rtl": "مرحبا بالعالم",
        "emoji": "\U0001f469\U0001f3fd\u200d\u2695\ufe0f",
        "controls": "tab\there\nnewline\r\x00nul\x1f\x7f",
        "quotes": "\"quoted\" \\ backslash / slash",
        "separators": "\u2028\u2029",
        "bom": "\ufeff",
        # Key order is by UTF-8 bytes (= code points): U+FF21 sorts before U+1F642,
        # which UTF-16 order would reverse.
        "\uff21": "fullwidth A",
        "\U0001f642": "slightly smiling face",
        "nested": {"Ω": ["", "ä", {"k\u0000": "v"}]},
    },
]

MULTI = [
    {"id": 10 + i, "model": "survey.member" if i % 2 else "survey.household", "n": i}
    for i in range(3)
]

# Incompressible, so two of them cannot share a 2560-byte bundle: seal() rolls over.
CHAIN = [
    {"id": 20 + i, "model": "vectors.blob",
     "blob": b"".join(hashlib.sha256(f"blob {i} {j}".encode()).digest() for j in range(32))}
    for i in range(2)
]


def sealed(records: list[dict], recipients: list[Identity], sender: Identity = SITE_A,
           max_bytes: int | None = None) -> list[tuple[bytes, Any, list[dict]]]:
    """seal() into a temporary folder: (bytes, SealedBundle, its records) per bundle."""
    kwargs = {} if max_bytes is None else {"max_bytes": max_bytes}
    with tempfile.TemporaryDirectory() as tmp:
        out = seal(records, identity=sender, recipients=[r.public for r in recipients],
                   out_dir=tmp, after=ChainLink(0, None), created=CREATED, **kwargs)
        result, start = [], 0
        for s in out:
            n = s.manifest.record_count
            result.append((Path(s.path).read_bytes(), s, records[start : start + n]))
            start += n
    return result


# --------------------------------------------------------------------------- surgery


@dataclasses.dataclass(frozen=True)
class Parts:
    data: bytes
    payload: bytes
    manifest: bytes
    signature: bytes

    @property
    def manifest_start(self) -> int:
        return len(container.MAGIC) + len(self.payload)

    @property
    def signature_start(self) -> int:
        return self.manifest_start + len(self.manifest)

    @property
    def footer_start(self) -> int:
        return self.signature_start + container.SIGNATURE_SIZE

    @property
    def age_header_end(self) -> int:
        """File offset just past the age header's MAC line (the payload nonce starts here)."""
        mac = self.payload.index(b"\n--- ")
        return len(container.MAGIC) + self.payload.index(b"\n", mac + 1) + 1


def split(data: bytes) -> Parts:
    p, m = _FOOTER.unpack_from(data, len(data) - container.FOOTER_SIZE)
    start = len(container.MAGIC)
    return Parts(data, data[start : start + p], data[start + p : start + p + m],
                 data[start + p + m : start + p + m + container.SIGNATURE_SIZE])


def flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    return data[:offset] + bytes([data[offset] ^ mask]) + data[offset + 1 :]


def assemble(payload: bytes, manifest: bytes, signature: bytes) -> bytes:
    return container.MAGIC + payload + container.trailer(len(payload), manifest, signature)


def resigned(parts: Parts, manifest: bytes, signer: Identity) -> bytes:
    """The same payload with another manifest, correctly signed by ``signer``."""
    return assemble(parts.payload, manifest, sign(signer, manifest))


def signed_payload(frame: bytes, *, record_count: int, uncompressed_size: int,
                   bundle_id: str, recipient: Identity = CENTRAL) -> bytes:
    """A correctly signed bundle around any age plaintext: what a malicious sender can make."""
    buf = io.BytesIO()
    w = age.encrypt([recipient.public.x25519], buf)
    w.write(frame)
    w.close()
    payload = buf.getvalue()
    manifest = Manifest(
        bundle_id=uuid.UUID(bundle_id), sender=SITE_A.public,
        recipients=(recipient.fingerprint,), seq=1, prev=None, created=CREATED,
        record_count=record_count, kinds={}, key_field="id", kind_field="model",
        first_key=1, last_key=1, uncompressed_size=uncompressed_size,
        compressed_size=len(frame), payload_size=len(payload),
        payload_sha256=hashlib.sha256(payload).digest(),
    ).to_bytes()
    return assemble(payload, manifest, sign(SITE_A, manifest))


def zstd_frame(data: bytes, *, checksum: bool = True) -> bytes:
    return zstandard.ZstdCompressor(level=3, write_checksum=checksum).compress(data)


def packed(*records: dict) -> bytes:
    return b"".join(msgpack.packb(r, use_bin_type=True) for r in records)


# --------------------------------------------------------------------------- output


class Vectors:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def add(self, name: str, body: bytes, headers: list[tuple[str, str]]) -> None:
        if name in self.files:
            raise ValueError(f"duplicate vector name {name}")
        lines = []
        for key, value in headers:
            if "\n" in value or not value.isprintable():
                raise ValueError(f"{name}: header {key} must be one printable line")
            lines.append(f"{key}: {value}\n")
        self.files[name] = "".join(lines).encode("utf-8") + b"\n" + body

    def bundle(self, name: str, body: bytes, expect: str, comment: str, *,
               identity: Identity = CENTRAL, trusted: tuple[Identity, ...] = (),
               trusted_as: tuple[tuple[Identity, str], ...] = (),
               revoked: tuple[Identity, ...] = (), ok: tuple[Any, list[dict]] | None = None,
               schema: dict | None = None, files: tuple[bytes, ...] = ()) -> None:
        headers = [("file", "bundle"), ("expect", expect), ("comment", comment),
                   ("identity", identity.age_identity)]
        headers += [("trusted", t.fingerprint) for t in trusted]
        headers += [("trusted", f"{public_key_line(t.public)} {site}") for t, site in trusted_as]
        headers += [("revoked", r.public.verify_key) for r in revoked]
        if ok is not None:
            sealed_bundle, records = ok
            m = sealed_bundle.manifest
            headers += [("digest", sealed_bundle.digest.hex()), ("seq", str(m.seq)),
                        ("prev", m.prev.hex() if m.prev else "none"),
                        ("records", records_hash(records))]
            if schema is not None:
                headers += [("schema", schema_header(schema))]
            headers += [("files", f"{hashlib.sha256(f).hexdigest()} {len(f)}") for f in files]
        self.add(f"bundle-{name}", body, headers)

    def receipt(self, name: str, body: bytes, expect: str, comment: str, *,
                trusted_issuer: Identity = CENTRAL, me: Identity = SITE_A,
                ok: dict[str, str] | None = None) -> None:
        headers = [("file", "receipt"), ("expect", expect), ("comment", comment),
                   ("trusted-issuer",
                    f"{public_key_line(trusted_issuer.public)} {trusted_issuer.site}"),
                   ("me", public_key_line(me.public))]
        headers += list((ok or {}).items())
        self.add(f"receipt-{name}", body, headers)

    def write(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        for old in out.iterdir():
            if old.is_file() and old.name != "README.md" and not old.name.startswith("."):
                old.unlink()
        for name, data in sorted(self.files.items()):
            (out / name).write_bytes(data)


# --------------------------------------------------------------------------- the set


def bundle_vectors(v: Vectors) -> dict[str, Any]:
    ((single, single_sealed, single_records),) = sealed(SINGLE, [CENTRAL])
    v.bundle("ok-single-record", single, "ok",
             "one record, sealed for central-server by Site A, which the reader trusts",
             trusted=(SITE_A,), ok=(single_sealed, single_records))

    ((every, every_sealed, every_records),) = sealed(EVERY_TYPE, [CENTRAL])
    v.bundle("ok-every-value-type", every, "ok",
             "every msgpack type and every ext type of FORMAT.md 5.2, with edge values",
             ok=(every_sealed, every_records))

    ((text, text_sealed, text_records),) = sealed(TEXT, [CENTRAL])
    v.bundle("ok-text-values", text, "ok",
             "empty strings and keys, unicode, control characters, key order by UTF-8 bytes",
             ok=(text_sealed, text_records))

    ((multi, multi_sealed, multi_records),) = sealed(MULTI, [COMMUNITY, CENTRAL, HUB])
    for i, ident in enumerate((COMMUNITY, CENTRAL, HUB), 1):
        v.bundle(f"ok-multi-recipient-{i}", multi, "ok",
                 f"one bundle sealed for three servers, opened by recipient {i} ({ident.site})",
                 identity=ident, ok=(multi_sealed, multi_records))
    v.bundle("not-a-recipient", multi, "not-a-recipient",
             "the three-recipient bundle, opened by a server it was not sealed for",
             identity=OUTSIDER)

    chain = sealed(CHAIN, [CENTRAL], max_bytes=2560)
    assert len(chain) == 2, "the chain records must roll over into exactly two bundles"
    for data, s, recs in chain:
        v.bundle(f"ok-chain-seq{s.manifest.seq}", data, "ok",
                 f"bundle {s.manifest.seq} of 2 written by one seal() that rolled over at "
                 "2560 bytes; seq 2's prev is seq 1's digest", ok=(s, recs))

    parts = split(single)
    size = len(single)

    # Sender policy
    v.bundle("revoked-key", single, "revoked-key",
             "the single-record bundle, but Site A's signing key is revoked; revocation wins "
             "over trust", trusted=(SITE_A,), revoked=(SITE_A,))
    other = dataclasses.replace(Manifest.from_bytes(parts.manifest), sender=SITE_B.public)
    by_b = resigned(parts, other.to_bytes(), SITE_B)
    v.bundle("unknown-sender-resigned-by-other-key", by_b, "unknown-sender",
             "the manifest names Site B and is correctly signed by Site B, but only Site A "
             "is trusted", trusted=(SITE_A,))
    b_sealed = dataclasses.replace(single_sealed, manifest=other,
                                   digest=hashlib.sha256(split(by_b).manifest
                                                         + split(by_b).signature).digest())
    v.bundle("ok-other-sender-without-trusted-set", by_b, "ok",
             "the same file as unknown-sender-resigned-by-other-key, read with no trusted set: "
             "any correctly signed sender is accepted", ok=(b_sealed, single_records))
    renamed = dataclasses.replace(SITE_A, site="Site B (Eldoret)")
    (as_b, _, _), = sealed(single_records, [CENTRAL], sender=renamed)
    v.bundle("site-name-mismatch", as_b, "site-name-mismatch",
             "sealed with Site A's keys under the name Site B (Eldoret); the reader trusts "
             "those keys as Site A (Kisumu) (FORMAT.md 9.1 step 3)",
             trusted_as=((SITE_A, SITE_A.site),))

    # Magic and version
    v.bundle("not-a-bundle-empty", b"", "not-a-bundle", "a zero-length file")
    v.bundle("not-a-bundle-flipped-magic", flip(single, 0), "not-a-bundle",
             "the single-record bundle with the first byte of MAGIC flipped")
    v.bundle("unsupported-version-magic-v2", b"bundlekit.org/v2\n" + single[17:],
             "unsupported-version", "MAGIC_PREFIX followed by v2 (FORMAT.md 3.1)")
    v.bundle("unsupported-version-magic-v10", b"bundlekit.org/v10\n" + single[17:],
             "unsupported-version",
             "MAGIC_PREFIX followed by v10: any other version, not only one digit "
             "(FORMAT.md 3.1)")
    v3 = dataclasses.replace(Manifest.from_bytes(parts.manifest), format=3)
    v.bundle("unsupported-version-manifest-format-3", resigned(parts, v3.to_bytes(), SITE_A),
             "unsupported-version",
             "the manifest's format is 3 and the manifest is re-signed, so only the version "
             "check fails")

    # Format 2: the manifest states the sender's schema (FORMAT.md 4.5)
    with tempfile.TemporaryDirectory() as tmp:
        (schema_sealed,) = seal(SINGLE, identity=SITE_A, recipients=[CENTRAL.public], out_dir=tmp,
                                after=ChainLink(0, None), created=CREATED, schema=SCHEMA)
        schema_bytes = Path(schema_sealed.path).read_bytes()
    photo, scan = bytes(range(256)) + b"\xff\xd9" * 22, b"%PDF-1.4 consent form"
    file_records = [
        *blobs.chunks(io.BytesIO(photo), hashlib.sha256(photo).digest(), len(photo)),
        *blobs.chunks(io.BytesIO(scan), hashlib.sha256(scan).digest(), len(scan)),
        {"id": 2, "model": "survey.household", "photo": hashlib.sha256(photo).digest(),
         "scan": hashlib.sha256(scan).digest()},
    ]
    ((files_bytes, files_sealed, _),) = sealed(file_records, [CENTRAL])
    v.bundle("ok-file-chunk-records", files_bytes, "ok",
             "two files as chunk records (FORMAT.md 5.5) before the record that names them",
             ok=(files_sealed, file_records), files=(photo, scan))
    v.bundle("ok-schema-format-2", schema_bytes, "ok",
             "format 2: the manifest states the sender's schema, per component its applied "
             "steps, sorted", ok=(schema_sealed, SINGLE), schema=SCHEMA)
    sparts = split(schema_bytes)
    raw = Manifest.from_bytes(sparts.manifest).to_dict()
    unsorted = {**raw, "schema": {"clinic": ["0002_visit_note", "0001_initial"]}}
    v.bundle("corrupt-schema-steps-not-sorted",
             resigned(sparts, packb_canonical(unsorted), SITE_A), "corrupt",
             "format 2 whose schema steps are not sorted (FORMAT.md 4.5), re-signed")
    v1_with_schema = {**raw, "format": 1}
    v.bundle("corrupt-format-1-with-schema",
             resigned(sparts, packb_canonical(v1_with_schema), SITE_A), "corrupt",
             "a format-1 manifest with a schema key (only format 2 has it), re-signed")
    v2_without = {k: val for k, val in raw.items() if k != "schema"}
    v.bundle("corrupt-format-2-without-schema",
             resigned(sparts, packb_canonical(v2_without), SITE_A), "corrupt",
             "a format-2 manifest without its schema key, re-signed")

    # Truncation, one cut inside each section
    cuts = [
        ("magic", 9),
        ("age-header", len(container.MAGIC) + 40),
        ("age-payload", (parts.age_header_end + parts.manifest_start) // 2),
        ("manifest", parts.manifest_start + len(parts.manifest) // 2),
        ("signature", parts.signature_start + 32),
        ("footer", size - 10),
    ]
    for section, at in cuts:
        v.bundle(f"truncated-in-{section}", single[:at], "truncated",
                 f"the single-record bundle cut at byte {at} of {size}, inside the {section}")
    v.bundle("truncated-trailing-garbage", single + b"\x00garbage\n", "truncated",
             "bytes appended after END_MAGIC: the file no longer ends with END_MAGIC, which "
             "FORMAT.md 3.6 step 3 checks before the lengths (step 4)")

    # One flipped byte in each section
    stanza = single.index(b"-> X25519 ") + len(b"-> X25519 ")
    v.bundle("corrupt-flipped-age-header", flip(single, stanza), "corrupt",
             "a byte of the age header's X25519 stanza flipped: payload_sha256 no longer matches")
    v.bundle("corrupt-flipped-age-payload", flip(single, parts.age_header_end + 16 + 5),
             "corrupt", "a byte of the first STREAM chunk flipped: payload_sha256 no longer "
                        "matches")
    v.bundle("corrupt-flipped-manifest-structure", flip(single, parts.manifest_start),
             "corrupt",
             "the manifest's first byte (its map header) flipped: it does not decode")
    site_at = single.index(b"Kisumu", parts.manifest_start)
    v.bundle("bad-signature-flipped-manifest-value", flip(single, site_at, 0x20),
             "bad-signature",
             "one letter of sender.site changes case: still a valid canonical manifest, so "
             "only the signature fails")
    v.bundle("bad-signature-flipped-signature", flip(single, parts.signature_start),
             "bad-signature", "the first byte of the signature flipped")
    v.bundle("corrupt-flipped-footer-length", flip(single, parts.footer_start + 7),
             "corrupt", "the low byte of the footer's payload length flipped: the lengths no "
                        "longer add up to the file size")
    v.bundle("bad-signature-sender-swapped",
             assemble(parts.payload, other.to_bytes(), parts.signature), "bad-signature",
             "the manifest names Site B but the signature is Site A's over the original "
             "manifest")

    # Manifests that only their signer could have made
    noncanonical = msgpack.packb(Manifest.from_bytes(parts.manifest).to_dict(),
                                 use_bin_type=True)
    assert noncanonical != parts.manifest
    v.bundle("corrupt-noncanonical-manifest", resigned(parts, noncanonical, SITE_A), "corrupt",
             "the manifest's keys are not sorted (FORMAT.md 4.2), re-signed by Site A")

    # Payloads that only their signer could have made
    record = packed({"id": 1, "model": "m"})
    v.bundle("corrupt-decompression-bomb",
             signed_payload(zstd_frame(b"\x00" * (16 * 1024 * 1024)), record_count=1,
                            uncompressed_size=10,
                            bundle_id="00000000-0000-4000-8000-00000000b0b0"),
             "corrupt",
             "signed; the zstd frame holds 16 MiB of zeros but uncompressed_size says 10 "
             "(FORMAT.md 9.2)")
    v.bundle("corrupt-record-count-mismatch",
             signed_payload(zstd_frame(record), record_count=2, uncompressed_size=len(record),
                            bundle_id="00000000-0000-4000-8000-000000000c01"),
             "corrupt", "signed; the manifest says 2 records, the payload holds 1")
    unknown_ext = packed({"id": 1, "v": msgpack.ExtType(99, b"x")})
    v.bundle("corrupt-unknown-ext-type",
             signed_payload(zstd_frame(unknown_ext), record_count=1,
                            uncompressed_size=len(unknown_ext),
                            bundle_id="00000000-0000-4000-8000-000000000c02"),
             "corrupt", "signed; a record holds ext type 99 (FORMAT.md 5.2)")
    deep = b"\x82\xa2id\x01\xa1v" + b"\x91" * 40 + b"\x90"
    v.bundle("corrupt-record-nested-too-deep",
             signed_payload(zstd_frame(deep), record_count=1, uncompressed_size=len(deep),
                            bundle_id="00000000-0000-4000-8000-000000000c10"),
             "corrupt", "signed; a record nests lists 41 deep, more than MAX_RECORD_DEPTH "
             "(FORMAT.md 5.3)")
    many = b"\x82\xa2id\x01\xa1v\xdc\xff\xff" + b"\xdc\x00\x02\x90\x90" * 65535
    v.bundle("corrupt-record-too-many-values",
             signed_payload(zstd_frame(many), record_count=1, uncompressed_size=len(many),
                            bundle_id="00000000-0000-4000-8000-000000000c11"),
             "corrupt", "signed; a record of 196,610 values (65,535 lists of 2 empty lists), "
             "more than MAX_RECORD_VALUES (FORMAT.md 5.3)")
    announced = b"\x82\xa2id\x01\xa1v" + b"\xdc\xea\x60" * 100
    v.bundle("corrupt-record-headers-without-items",
             signed_payload(zstd_frame(announced), record_count=1,
                            uncompressed_size=len(announced),
                            bundle_id="00000000-0000-4000-8000-000000000c12"),
             "corrupt", "signed; lists that each announce 60,000 items, 100 deep, and hold "
             "none: refused before anything is allocated (FORMAT.md 5.3)")
    bad_ext = packed({"id": 1, "v": msgpack.ExtType(3, b"2024-05-01T12:00:00")})
    v.bundle("corrupt-ext-datetime-without-fraction",
             signed_payload(zstd_frame(bad_ext), record_count=1,
                            uncompressed_size=len(bad_ext),
                            bundle_id="00000000-0000-4000-8000-000000000c03"),
             "corrupt",
             "signed; an EXT_DATETIME without the 6 fraction digits FORMAT.md 5.2 requires")
    v.bundle("corrupt-zstd-without-checksum",
             signed_payload(zstd_frame(record, checksum=False), record_count=1,
                            uncompressed_size=len(record),
                            bundle_id="00000000-0000-4000-8000-000000000c04"),
             "corrupt",
             "signed; the zstd frame lacks the content checksum flag FORMAT.md 5.1 requires")
    v.bundle("corrupt-two-zstd-frames",
             signed_payload(zstd_frame(record) * 2, record_count=2,
                            uncompressed_size=2 * len(record),
                            bundle_id="00000000-0000-4000-8000-000000000c05"),
             "corrupt",
             "signed; two zstd frames where FORMAT.md 5.1 allows exactly one (sizes and counts "
             "match the two)")
    params = zstandard.ZstdCompressionParameters(window_log=24, write_checksum=1)
    buf = io.BytesIO()
    with zstandard.ZstdCompressor(compression_params=params).stream_writer(
            buf, closefd=False) as w:
        w.write(record)
    wide = buf.getvalue()
    assert zstandard.get_frame_parameters(wide).window_size == 16 * 1024 * 1024
    v.bundle("corrupt-window-too-large",
             signed_payload(wide, record_count=1, uncompressed_size=len(record),
                            bundle_id="00000000-0000-4000-8000-000000000c06"),
             "corrupt",
             "signed; the zstd frame asks for a 16 MiB window, over MAX_WINDOW_SIZE "
             "(FORMAT.md 5.1)")

    return {"chain": chain}


def receipt_vectors(v: Vectors, chain: list[tuple[bytes, Any, list[dict]]]) -> None:
    (_, s1, _), (_, s2, _) = chain
    entries = [
        receipt.ReceiptEntry(s1.manifest.bundle_id, 1, s1.digest, "applied", records=1),
        receipt.ReceiptEntry(s2.manifest.bundle_id, 2, s2.digest, "quarantined", records=1,
                             reason="conflict on vectors.blob 21",
                             outcomes=(receipt.Run(0, 1, "conflict",
                                                   "transaction id already used with other content"),)),
    ]
    rid = uuid.UUID("5eceb7e1-0000-4000-8000-000000000001")
    good = receipt.encode_receipt(issuer=CENTRAL, subject=SITE_A.public, entries=entries,
                                  created=CREATED, receipt_id=rid)
    v.receipt("ok", good, "ok",
              "central-server reports on Site A's chain vectors: seq 1 applied, seq 2 "
              "quarantined", ok={"receipt-id": str(rid), "entries": "2", "contiguous": "2",
                                 "outcomes": "1:0+1 applied; 2:0+1 conflict"})
    for_b = receipt.encode_receipt(
        issuer=CENTRAL, subject=SITE_B.public, entries=[], created=CREATED,
        receipt_id=uuid.UUID("5eceb7e1-0000-4000-8000-000000000002"))
    v.receipt("not-for-us", for_b, "receipt-not-for-us",
              "a correct receipt from central-server for Site B, read by Site A")
    body_length = len(good) - receipt.FIXED_OVERHEAD
    v.receipt("bad-signature", flip(good, len(receipt.MAGIC) + body_length),
              "receipt-bad-signature", "the first byte of the signature flipped")
    v.receipt("truncated", good[: len(good) // 2], "receipt-truncated",
              "the receipt cut in half: its footer is missing")
    by_hub = receipt.encode_receipt(
        issuer=HUB, subject=SITE_A.public, entries=entries, created=CREATED,
        receipt_id=uuid.UUID("5eceb7e1-0000-4000-8000-000000000003"))
    v.receipt("untrusted-issuer", by_hub, "receipt-untrusted",
              "correctly signed by hub, but the reader trusts only central-server")
    renamed = dataclasses.replace(CENTRAL, site="Site B (Eldoret)")
    by_renamed = receipt.encode_receipt(
        issuer=renamed, subject=SITE_A.public, entries=entries, created=CREATED,
        receipt_id=uuid.UUID("5eceb7e1-0000-4000-8000-000000000004"))
    v.receipt("issuer-mismatch", by_renamed, "receipt-issuer-mismatch",
              "signed with central-server's key, but its issuer names Site B (Eldoret): "
              "the name must be the one the key is trusted as")
    files_vectors(v)
    body = good[len(receipt.MAGIC) : len(receipt.MAGIC) + body_length]
    raw = msgpack.unpackb(body, raw=False)
    unsorted = msgpack.packb(dict(reversed(list(raw.items()))), use_bin_type=True)
    assert unsorted != body
    signature = CENTRAL.sign(receipt.SIGNATURE_CONTEXT + unsorted)
    v.receipt("noncanonical-body",
              receipt.MAGIC + unsorted + signature + struct.pack(">I", len(unsorted))
              + receipt.END_MAGIC,
              "receipt-corrupt", "the body's keys are not sorted (RECEIPTS.md 3), re-signed")


def files_vectors(v: Vectors) -> None:
    """RECEIPTS.md §3.7: which files the issuer holds, and which it needs again."""
    photo, scan, trace = (hashlib.sha256(t).digest()
                          for t in (b"label photo", b"consent form", b"ecg trace"))
    held, needed = sorted([photo, scan]), [trace]
    rid = uuid.UUID("5eceb7e1-0000-4000-8000-000000000005")
    good = receipt.encode_receipt(issuer=CENTRAL, subject=SITE_A.public, entries=[],
                                  created=CREATED, receipt_id=rid,
                                  files_held=held, files_needed=needed)
    v.receipt("ok-files", good, "ok",
              "central-server holds two of Site A's files and needs a third sent again; "
              "no bundle entries", ok={"receipt-id": str(rid), "entries": "0", "contiguous": "0",
                                       "files-held": " ".join(d.hex() for d in held),
                                       "files-needed": trace.hex()})
    body_length = len(good) - receipt.FIXED_OVERHEAD
    raw = msgpack.unpackb(good[len(receipt.MAGIC) : len(receipt.MAGIC) + body_length], raw=False)
    raw["files"]["held"] = list(reversed(raw["files"]["held"]))
    unsorted = msgpack.packb(raw, use_bin_type=True)
    signature = CENTRAL.sign(receipt.SIGNATURE_CONTEXT + unsorted)
    v.receipt("files-not-sorted",
              receipt.MAGIC + unsorted + signature + struct.pack(">I", len(unsorted))
              + receipt.END_MAGIC,
              "receipt-corrupt", "files.held not in ascending order (RECEIPTS.md 3.7), re-signed")
    by_hub = receipt.encode_receipt(
        issuer=HUB, subject=SITE_A.public, entries=[], created=CREATED,
        receipt_id=uuid.UUID("5eceb7e1-0000-4000-8000-000000000006"), files_held=held)
    v.receipt("files-from-untrusted", by_hub, "receipt-untrusted",
              "correctly signed by hub, claiming central-server's files are held: only a "
              "trusted issuer may say so (a site deletes its copies on that word)")


def main() -> int:
    v = Vectors()
    made = bundle_vectors(v)
    receipt_vectors(v, made["chain"])
    v.write(OUT)
    total = sum(len(d) for d in v.files.values())
    print(f"wrote {len(v.files)} vectors, {total} bytes, to {OUT.name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
