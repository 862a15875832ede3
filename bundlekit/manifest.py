"""The manifest: what a bundle holds and who sealed it, signed (FORMAT.md §4).

The manifest is clear text so a server can check sender, chain position and
integrity without a decryption key.  It is canonical msgpack (map keys sorted,
shortest encodings), so decoding then re-encoding must give the same bytes;
a reader refuses anything else.  That makes parsing strict with one rule
instead of many, and it refuses duplicate keys for free.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgpack

from bundlekit import age, canonical
from bundlekit.canonical import UTC_TIME
from bundlekit.errors import BadSignature, CorruptBundle, UnsupportedVersion
from bundlekit.keys import FINGERPRINT, Identity, PublicKey
from bundlekit.limits import (
    MANIFEST,
    MAX_KINDS,
    MAX_MANIFEST_SIZE,
    MAX_RECIPIENTS,
    MAX_SCHEMA_COMPONENTS,
    MAX_SCHEMA_STEPS,
    LimitExceeded,
    scan,
)
from bundlekit.records import _default, ext_hook

#: FORMAT.md §4.1: the manifest's format version: 1, or 2 when it states a schema.
FORMAT_VERSION = 1
#: FORMAT.md §4.5: the manifest format that adds ``schema``.
SCHEMA_FORMAT = 2
#: FORMAT.md §11: manifest formats this reader reads.
READABLE_FORMATS = (1, 2)
#: FORMAT.md §4.3: domain label prefixed to the manifest before signing.
SIGNATURE_CONTEXT = b"bundlekit.org/v1/manifest\n"
#: FORMAT.md §4.1: the exact set of manifest keys in version 1.
MANIFEST_KEYS = frozenset(
    {
        "format", "bundle_id", "sender", "recipients", "seq", "prev", "created",
        "record_count", "kinds", "key_field", "kind_field", "first_key", "last_key",
        "uncompressed_size", "compressed_size", "payload_size", "payload_sha256",
    }
)
#: FORMAT.md §4.5: format 2 has exactly these keys.
MANIFEST_KEYS_2 = MANIFEST_KEYS | {"schema"}
SENDER_KEYS = frozenset({"site", "fingerprint", "ed25519", "age_recipient"})
#: FORMAT.md §4.1: text fields are at most this long.
MAX_TEXT = 1000
_MAX_INT = 2**63 - 1
_CREATED = UTC_TIME
_FINGERPRINT = FINGERPRINT


def packb_canonical(obj: Any) -> bytes:
    """Canonical msgpack (:func:`bundlekit.canonical.packb`) with the typed keys'
    extension types."""
    return canonical.packb(obj, default=_default)


format_created = canonical.format_utc


@dataclass(frozen=True)
class Manifest:
    """A decoded manifest.  Build with the constructor; parse with :meth:`from_bytes`."""

    bundle_id: uuid.UUID
    sender: PublicKey
    recipients: tuple[str, ...]
    seq: int
    prev: bytes | None
    created: dt.datetime
    record_count: int
    kinds: dict[str, int]
    key_field: str
    kind_field: str
    first_key: Any
    last_key: Any
    uncompressed_size: int
    compressed_size: int
    payload_size: int
    payload_sha256: bytes
    format: int = field(default=FORMAT_VERSION)
    #: FORMAT.md §4.5: per component (e.g. a Django app), the schema steps (e.g.
    #: migrations) the sender had applied; None in a format-1 manifest.
    schema: dict[str, tuple[str, ...]] | None = None

    def __post_init__(self):
        # A stated schema makes the manifest format 2 (and only then).
        if self.schema is not None and self.format == FORMAT_VERSION:
            object.__setattr__(self, "format", SCHEMA_FORMAT)

    def to_dict(self) -> dict[str, Any]:
        """The manifest as msgpack sees it (FORMAT.md §4.1)."""
        return {
            "format": self.format,
            "bundle_id": str(self.bundle_id),
            "sender": {
                "site": self.sender.site,
                "fingerprint": self.sender.fingerprint,
                "ed25519": self.sender.ed25519,
                "age_recipient": self.sender.age_recipient,
            },
            "recipients": list(self.recipients),
            "seq": self.seq,
            "prev": self.prev,
            "created": format_created(self.created),
            "record_count": self.record_count,
            "kinds": dict(self.kinds),
            "key_field": self.key_field,
            "kind_field": self.kind_field,
            "first_key": self.first_key,
            "last_key": self.last_key,
            "uncompressed_size": self.uncompressed_size,
            "compressed_size": self.compressed_size,
            "payload_size": self.payload_size,
            "payload_sha256": self.payload_sha256,
            **({} if self.schema is None
               else {"schema": {k: list(v) for k, v in self.schema.items()}}),
        }

    def to_bytes(self) -> bytes:
        if len(self.recipients) > MAX_RECIPIENTS:
            raise ValueError(f"a bundle is sealed for at most {MAX_RECIPIENTS} recipients")
        if len(self.kinds) > MAX_KINDS:
            raise ValueError(f"a bundle holds at most {MAX_KINDS} kinds (distinct models)")
        if self.schema is not None:
            _schema_size(self.schema)
        data = packb_canonical(self.to_dict())
        if len(data) > MAX_MANIFEST_SIZE:
            raise ValueError("manifest too large (too many kinds or huge keys)")
        return data

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Strict parse; CorruptBundle/UnsupportedVersion without a path."""
        if len(data) > MAX_MANIFEST_SIZE:
            raise CorruptBundle("its manifest is too large: the file is damaged")
        try:
            # Unsigned input: bound values, depth and lengths before building anything.
            scan(data, MANIFEST)
        except LimitExceeded as e:
            raise CorruptBundle(f"its manifest is refused: {e}") from None
        try:
            raw = msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=ext_hook)
        except Exception as e:  # msgpack, ext decoders and UTF-8 raise many types
            raise CorruptBundle(f"its manifest cannot be decoded ({type(e).__name__})") from None
        if type(raw) is dict and "format" in raw and raw["format"] not in READABLE_FORMATS:
            raise UnsupportedVersion(
                f"its manifest is format {raw['format']!r}; this bundlekit reads formats "
                f"{' and '.join(map(str, READABLE_FORMATS))} (upgrade bundlekit to read it)"
            )
        try:
            manifest = _from_dict(raw)
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptBundle(f"its manifest is malformed ({e})") from None
        try:
            canonical = manifest.to_bytes() == data
        except Exception:
            canonical = False
        if not canonical:
            raise CorruptBundle("its manifest is not in canonical form: the file was altered")
        return manifest


def _need(value: Any, kind: type | tuple[type, ...], name: str) -> Any:
    if type(value) not in (kind if isinstance(kind, tuple) else (kind,)):
        raise TypeError(f"field {name!r} has the wrong type")
    return value


def _text(value: Any, name: str) -> str:
    _need(value, str, name)
    if len(value) > MAX_TEXT:
        raise ValueError(f"field {name!r} is too long")
    return value


def _count(value: Any, name: str, minimum: int = 0) -> int:
    _need(value, int, name)
    if not minimum <= value <= _MAX_INT:
        raise ValueError(f"field {name!r} is out of range")
    return value


def _digest(value: Any, name: str) -> bytes:
    _need(value, bytes, name)
    if len(value) != 32:
        raise ValueError(f"field {name!r} is not a SHA-256 digest")
    return value


def _bundle_id(value: Any) -> uuid.UUID:
    """FORMAT.md §4.1: a random (version 4) UUID in lower-case hyphenated form."""
    text = _text(value, "bundle_id")
    parsed = uuid.UUID(text)  # ValueError if it is not a UUID at all
    if str(parsed) != text or parsed.version != 4:
        raise ValueError("bundle_id is not a version-4 UUID in lower-case hyphenated form")
    return parsed


def _from_dict(raw: Any) -> Manifest:
    _need(raw, dict, "manifest")
    version = raw.get("format")
    if set(raw) != (MANIFEST_KEYS_2 if version == SCHEMA_FORMAT else MANIFEST_KEYS):
        raise ValueError("unexpected or missing fields")
    s = _need(raw["sender"], dict, "sender")
    if set(s) != SENDER_KEYS:
        raise ValueError("unexpected or missing sender fields")
    ed25519 = _need(s["ed25519"], bytes, "sender.ed25519")
    sender = PublicKey(
        _text(s["site"], "sender.site"),
        age.decode_recipient(_text(s["age_recipient"], "sender.age_recipient")),
        ed25519,
    )
    if _text(s["fingerprint"], "sender.fingerprint") != sender.fingerprint:
        raise ValueError("sender fingerprint does not match the sender's keys")
    recipients = tuple(_text(r, "recipients[]") for r in _need(raw["recipients"], list, "recipients"))
    if not recipients:
        raise ValueError("no recipients")
    if len(recipients) > MAX_RECIPIENTS:
        raise ValueError(f"more than {MAX_RECIPIENTS} recipients")
    if not all(_FINGERPRINT.fullmatch(r) for r in recipients):
        raise ValueError("a recipient is not a key fingerprint")
    seq = _count(raw["seq"], "seq", 1)
    prev = raw["prev"]
    if (seq == 1) != (prev is None):
        raise ValueError("prev must be nil exactly for seq 1")
    if prev is not None:
        _digest(prev, "prev")
    created = _text(raw["created"], "created")
    if not _CREATED.fullmatch(created):
        raise ValueError("created is not a UTC timestamp")
    kinds = _need(raw["kinds"], dict, "kinds")
    for k, v in kinds.items():
        _text(k, "kinds key")
        _count(v, "kinds value", 1)
    record_count = _count(raw["record_count"], "record_count", 1)
    if sum(kinds.values()) > record_count:
        raise ValueError("kinds add up to more than record_count")
    for name in ("first_key", "last_key"):
        if type(raw[name]) in (list, dict):  # a key that is not a scalar is written as nil
            raise ValueError(f"{name} is not a scalar")
    return Manifest(
        bundle_id=_bundle_id(raw["bundle_id"]),
        sender=sender,
        recipients=recipients,
        seq=seq,
        prev=prev,
        created=dt.datetime.fromisoformat(created),
        record_count=record_count,
        kinds=kinds,
        key_field=_text(raw["key_field"], "key_field"),
        kind_field=_text(raw["kind_field"], "kind_field"),
        first_key=raw["first_key"],
        last_key=raw["last_key"],
        uncompressed_size=_count(raw["uncompressed_size"], "uncompressed_size", 1),
        compressed_size=_count(raw["compressed_size"], "compressed_size", 1),
        payload_size=_count(raw["payload_size"], "payload_size", 1),
        payload_sha256=_digest(raw["payload_sha256"], "payload_sha256"),
        format=version,
        schema=_schema(raw["schema"]) if version == SCHEMA_FORMAT else None,
    )


def _schema_size(schema: dict) -> None:
    if len(schema) > MAX_SCHEMA_COMPONENTS:
        raise ValueError(f"a schema names at most {MAX_SCHEMA_COMPONENTS} components")
    if sum(len(steps) for steps in schema.values()) > MAX_SCHEMA_STEPS:
        raise ValueError(f"a schema holds at most {MAX_SCHEMA_STEPS} steps in all")


def _schema(value: Any) -> dict[str, tuple[str, ...]]:
    """FORMAT.md §4.5: map of text to arrays of text, each sorted and unique."""
    _need(value, dict, "schema")
    _schema_size(value)
    out = {}
    for component, steps in value.items():
        _text(component, "schema key")
        _need(steps, list, "schema value")
        names = tuple(_text(step, "schema step") for step in steps)
        if any(a >= b for a, b in zip(names, names[1:], strict=False)):
            raise ValueError("schema steps are not sorted and unique")
        out[component] = names
    return out


def sign(identity: Identity, manifest_bytes: bytes) -> bytes:
    """FORMAT.md §4.3: Ed25519 over SIGNATURE_CONTEXT || manifest."""
    return identity.sign(SIGNATURE_CONTEXT + manifest_bytes)


def check_signature(sender: PublicKey, manifest_bytes: bytes, signature: bytes) -> None:
    if not sender.verify(signature, SIGNATURE_CONTEXT + manifest_bytes):
        raise BadSignature(
            "its signature does not match its contents: it was altered or forged"
        )


def bundle_digest(manifest_bytes: bytes, signature: bytes) -> bytes:
    """FORMAT.md §4.4: the chain link and the name's hex; binds every byte via the manifest."""
    return hashlib.sha256(manifest_bytes + signature).digest()
