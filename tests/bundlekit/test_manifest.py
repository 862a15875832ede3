"""The manifest is canonical, strict, signed with a domain label, and versioned."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from bundlekit.errors import BadSignature, CorruptBundle, UnsupportedVersion
from bundlekit.manifest import (
    SIGNATURE_CONTEXT,
    Manifest,
    bundle_digest,
    check_signature,
    packb_canonical,
    sign,
)


def _raw(manifest: Manifest) -> dict:
    return msgpack.unpackb(manifest.to_bytes(), strict_map_key=False)


def test_round_trip_is_byte_exact(small_bundle):
    m = small_bundle.manifest
    data = m.to_bytes()
    assert Manifest.from_bytes(data) == m
    assert Manifest.from_bytes(data).to_bytes() == data


def test_plain_msgpack_can_read_it(small_bundle, site):
    raw = _raw(small_bundle.manifest)
    assert raw["format"] == 1
    assert raw["sender"]["site"] == site.site
    assert raw["sender"]["age_recipient"].startswith("age1")
    assert list(raw) == sorted(raw)


def test_non_canonical_encoding_is_refused(small_bundle):
    raw = _raw(small_bundle.manifest)
    reordered = msgpack.packb(dict(reversed(list(raw.items()))))
    with pytest.raises(CorruptBundle, match="canonical"):
        Manifest.from_bytes(reordered)


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.pop("seq"),
        lambda r: r.update(extra=1),
        lambda r: r.update(seq="1"),
        lambda r: r.update(seq=0),
        lambda r: r.update(prev=b"\x00" * 32),  # seq 1 must have no prev
        lambda r: r.update(payload_sha256=b"short"),
        lambda r: r.update(created="2024-05-01 12:00"),
        lambda r: r.update(kinds={"m": 99}),
        lambda r: r["sender"].update(fingerprint="0000-0000"),
        lambda r: r["sender"].update(age_recipient="age1notakey"),
        lambda r: r.update(recipients=[]),
    ],
)
def test_every_field_is_checked(small_bundle, change):
    raw = _raw(small_bundle.manifest)
    change(raw)
    with pytest.raises(CorruptBundle):
        Manifest.from_bytes(packb_canonical(raw))


def test_newer_format_is_unsupported_not_corrupt(small_bundle):
    raw = _raw(small_bundle.manifest)
    raw["format"] = 3
    with pytest.raises(UnsupportedVersion):
        Manifest.from_bytes(packb_canonical(raw))


def test_a_stated_schema_makes_format_2_and_round_trips(small_bundle):
    schema = {"clinic": ("0001_initial", "0002_visit_note"), "sync": ()}
    m2 = dataclasses.replace(small_bundle.manifest, schema=schema)
    assert m2.format == 2
    back = Manifest.from_bytes(m2.to_bytes())
    assert (back.format, back.schema) == (2, schema)
    # The largest schema a writer may state is one a reader reads.
    widest = {f"app{i:03d}": tuple(f"{j:04d}_m" for j in range(16)) for i in range(256)}
    big = dataclasses.replace(small_bundle.manifest, schema=widest)
    assert Manifest.from_bytes(big.to_bytes()).schema == widest
    assert Manifest.from_bytes(small_bundle.manifest.to_bytes()).schema is None


@pytest.mark.parametrize("schema, words", [
    ({"clinic": ["0002_b", "0001_a"]}, "sorted"),
    ({"clinic": ["0001_a", "0001_a"]}, "sorted"),
    ({"clinic": "0001_a"}, "wrong type"),
    ({"clinic": [1]}, "wrong type"),
    ({"clinic": ["x" * 1001]}, "too long"),
    (["clinic"], "wrong type"),
    ({f"app{i}": [] for i in range(257)}, "at most 256 components"),
    ({"a": [f"{i:05d}" for i in range(2049)], "b": [f"{i:05d}" for i in range(2049)]},
     "at most 4096 steps"),
])
def test_a_bad_schema_is_corrupt(small_bundle, schema, words):
    raw = {**_raw(small_bundle.manifest), "format": 2, "schema": schema}
    with pytest.raises(CorruptBundle, match=words):
        Manifest.from_bytes(packb_canonical(raw))


def test_signature_is_domain_separated(small_bundle, site):
    data = small_bundle.manifest.to_bytes()
    sig = sign(site, data)
    check_signature(site.public, data, sig)
    with pytest.raises(BadSignature):
        check_signature(site.public, data, site.sign(data))  # no label: not a manifest signature
    assert SIGNATURE_CONTEXT.startswith(b"bundlekit.org/v1/")


def test_digest_binds_manifest_and_signature(small_bundle, site):
    data = small_bundle.manifest.to_bytes()
    assert bundle_digest(data, b"\x00" * 64) != bundle_digest(data, b"\x01" * 64)
