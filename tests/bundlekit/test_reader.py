"""A server checks and opens bundles: verify() needs no secret, open_bundle() decrypts."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
import zstandard

from bundlekit import age, container
from bundlekit import records as records_mod
from bundlekit.errors import (
    BadSignature,
    BundleError,
    CorruptBundle,
    NotABundle,
    NotARecipient,
    RevokedKey,
    TruncatedBundle,
    UnknownSender,
    UnsupportedVersion,
)
from bundlekit.keys import Identity, write_keypair
from bundlekit.reader import copy_payload, open_bundle, read_manifest, verify
from bundlekit.writer import ChainLink, seal

from .conftest import FIXED_TIME, make_records
from .test_keys import require_tool


def test_verify_needs_no_decryption_key(small_bundle, site):
    vb = verify(small_bundle.path)
    assert vb.digest == small_bundle.digest
    assert vb.sender == site.public
    assert vb.manifest.created == FIXED_TIME
    assert read_manifest(small_bundle.path) == vb.manifest


def test_trusted_senders_only(small_bundle, site):
    stranger = Identity.generate("stranger")
    assert verify(small_bundle.path, trusted=[site.public]).sender == site.public
    assert verify(small_bundle.path, trusted=[site.public.fingerprint]).sender == site.public
    with pytest.raises(UnknownSender, match="not one of the trusted senders"):
        verify(small_bundle.path, trusted=[stranger.public])
    with pytest.raises(UnknownSender):
        verify(small_bundle.path, trusted=[])


def test_revoked_key_is_refused_even_if_trusted(small_bundle, site, community):
    with pytest.raises(RevokedKey, match="revoked"):
        verify(small_bundle.path, trusted=[site.public], revoked=[site.public])
    with pytest.raises(RevokedKey):
        with open_bundle(small_bundle.path, [community], revoked=[site.public.fingerprint]):
            pass


def test_wrong_key_is_not_a_recipient(small_bundle, middleman):
    with pytest.raises(NotARecipient, match="sealed for other servers") as e:
        with open_bundle(small_bundle.path, [middleman]):
            pass
    assert small_bundle.path in str(e.value)


def test_any_of_several_keys_will_do(small_bundle, middleman, central):
    with open_bundle(small_bundle.path, [middleman, central]) as bundle:
        assert list(bundle) == [{"id": 1, "model": "m", "v": "x"}]


def test_records_can_be_iterated_once(small_bundle, community):
    with open_bundle(small_bundle.path, [community]) as bundle:
        list(bundle)
        with pytest.raises(ValueError):
            list(bundle)


def test_records_come_with_their_bytes_as_carried(small_bundle, community):
    with open_bundle(small_bundle.path, [community]) as bundle:
        records = list(bundle)
    with open_bundle(small_bundle.path, [community]) as bundle:
        pairs = list(bundle.packed())
        with pytest.raises(ValueError):
            list(bundle)
    assert [record for record, _ in pairs] == records
    assert all(records_mod.unpackb(raw) == record for record, raw in pairs)
    # The bytes are the payload's own: laid end to end they are the whole of it.
    with open_bundle(small_bundle.path, [community]) as bundle:
        whole = b"".join(raw for _, raw in bundle.packed())
        assert len(whole) == bundle.manifest.uncompressed_size


def test_callers_errors_inside_the_with_block_pass_through(small_bundle, community):
    with pytest.raises(OSError):
        with open_bundle(small_bundle.path, [community]):
            raise OSError("the caller's own problem")


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", NotABundle),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, NotABundle),
        (b"bundlekit.org/v2\n" + b"\x00" * 100, UnsupportedVersion),
        (b"bundlekit.org/v10\n" + b"\x00" * 100, UnsupportedVersion),  # FORMAT.md §3.1
        (b"bundlekit.org/v999\n", UnsupportedVersion),
        (b"bundlekit.org/v10", NotABundle),  # not a prefix of MAGIC, nor a whole magic
        (b"bundlekit.org/v1\n", TruncatedBundle),
        (b"bundlek", TruncatedBundle),
    ],
)
def test_what_is_not_a_bundle_says_so(tmp_path, content, error):
    p = tmp_path / "x.bundle"
    p.write_bytes(content)
    with pytest.raises(error) as e:
        verify(p)
    assert str(p) in str(e.value)


def test_missing_file_is_a_bundle_error(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        verify(tmp_path / "gone.bundle")


def test_half_copied_file_says_so(small_bundle, tmp_path):
    data = open(small_bundle.path, "rb").read()
    p = tmp_path / "half.bundle"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedBundle, match="half-copied"):
        verify(p)


def test_a_swapped_payload_is_caught(tmp_path, site, community):
    """A valid age file for the same recipient, but not the one the sender signed."""
    a, b = (tmp_path / "a", tmp_path / "b")
    a.mkdir(), b.mkdir()
    (one,) = seal(make_records(3), identity=site, recipients=[community.public], out_dir=a,
                  after=ChainLink(0, None))
    (two,) = seal(make_records(3), identity=site, recipients=[community.public], out_dir=b,
                  after=ChainLink(0, None))
    d1, d2 = open(one.path, "rb").read(), open(two.path, "rb").read()
    p1 = one.manifest.payload_size
    spliced = d1[:17] + d2[17 : 17 + p1] + d1[17 + p1 :]
    p = tmp_path / "spliced.bundle"
    p.write_bytes(spliced)
    with pytest.raises(CorruptBundle, match="checksum"):
        verify(p)


def test_forged_manifest_fails_the_signature(tmp_path, small_bundle, site):
    """Re-signing by someone else: the sender key in the manifest no longer matches."""
    from bundlekit.manifest import SIGNATURE_CONTEXT

    data = open(small_bundle.path, "rb").read()
    lay_m = small_bundle.manifest.to_bytes()
    forger = Identity.generate("forger")
    forged_sig = forger.sign(SIGNATURE_CONTEXT + lay_m)
    i = data.index(lay_m) + len(lay_m)
    p = tmp_path / "forged.bundle"
    p.write_bytes(data[:i] + forged_sig + data[i + 64 :])
    with pytest.raises(BadSignature):
        verify(p)


def test_copy_payload_gives_a_standard_age_file(small_bundle, community, tmp_path):
    dst = tmp_path / "payload.age"
    with open(dst, "wb") as f:
        copy_payload(small_bundle.path, f)
    with open(dst, "rb") as f:
        compressed = age.decrypt([community.x25519_secret], f).read()
    plain = zstandard.ZstdDecompressor().stream_reader(compressed).read()
    assert msgpack.unpackb(plain) == {"id": 1, "model": "m", "v": "x"}


def test_format_md_standard_tools_recipe_works(tmp_path, site, community):
    """Runs the shell recipe of docs/FORMAT.md §10 as written: footer, tail|head, age, zstd."""
    require_tool("age"), require_tool("zstd")
    bash = shutil.which("bash") or pytest.skip("bash is not installed")
    key_path, _ = write_keypair(community, tmp_path)
    recs = [{"id": i, "name": f"row {i}"} for i in range(100)]
    (sealed,) = seal(recs, identity=site, recipients=[community.public], out_dir=tmp_path,
                     after=ChainLink(0, None))
    doc = (Path(__file__).parents[2] / "docs" / "FORMAT.md").read_text()
    recipe = doc.split("## 10.", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    assert f"tail -c {container.FOOTER_SIZE} " in recipe
    assert f"tail -c +{container.PAYLOAD_OFFSET + 1} " in recipe
    recipe = re.sub(r"^F=.*$", f"F={shlex.quote(sealed.path)}", recipe, flags=re.M)
    recipe = recipe.replace("central-server.key", shlex.quote(key_path))
    recipe = recipe.replace("python3 ", f"{shlex.quote(sys.executable)} ")
    out = subprocess.run([bash, "-euo", "pipefail", "-c", recipe], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [str(r) for r in recs]
    with open(tmp_path / "payload.msgpack", "rb") as f:
        assert list(msgpack.Unpacker(f)) == recs
    assert os.path.getsize(tmp_path / "payload.age") == sealed.manifest.payload_size


def test_a_multi_digit_version_is_named(tmp_path):
    p = tmp_path / "v10.bundle"
    p.write_bytes(b"bundlekit.org/v10\n" + b"\x00" * 200)
    with pytest.raises(UnsupportedVersion, match="version 10 bundle"):
        read_manifest(p)


# --- FORMAT.md §5.1: the age plaintext is exactly one zstd frame with a checksum


def _signed_frame(tmp_path, site, recipient, frame: bytes, *, records: int, uncompressed: int,
                  bundle_id=None, recipients=None, first_key=None) -> Path:
    """A correctly signed bundle around any age plaintext: what a malicious sender could make."""
    import hashlib
    import io
    import uuid

    from bundlekit.manifest import Manifest, sign

    buf = io.BytesIO()
    w = age.encrypt([recipient.public.x25519], buf)
    w.write(frame)
    w.close()
    payload = buf.getvalue()
    manifest = Manifest(
        bundle_id=bundle_id or uuid.uuid4(), sender=site.public,
        recipients=recipients or (recipient.fingerprint,), seq=1, prev=None,
        created=FIXED_TIME, record_count=records, kinds={}, key_field="id", kind_field="model",
        first_key=first_key, last_key=None, uncompressed_size=uncompressed,
        compressed_size=max(len(frame), 1), payload_size=len(payload),
        payload_sha256=hashlib.sha256(payload).digest(),
    ).to_bytes()
    p = tmp_path / "signed.bundle"
    p.write_bytes(container.MAGIC + payload + container.trailer(len(payload), manifest,
                                                               sign(site, manifest)))
    return p


def _open_all(path, identity) -> list:
    with open_bundle(path, [identity]) as bundle:
        return list(bundle)


_RECORD = msgpack.packb({"id": 1, "v": "x" * 300})


def _frame(data: bytes = _RECORD, **params) -> bytes:
    params.setdefault("write_checksum", 1)
    cctx = zstandard.ZstdCompressor(
        compression_params=zstandard.ZstdCompressionParameters.from_level(3, **params))
    buf = __import__("io").BytesIO()
    with cctx.stream_writer(buf, closefd=False) as w:  # content size unknown: a real window
        w.write(data)
    return buf.getvalue()


def test_a_well_formed_hand_made_frame_is_read(tmp_path, site, community):
    p = _signed_frame(tmp_path, site, community, _frame(), records=1, uncompressed=len(_RECORD))
    assert _open_all(p, community) == [{"id": 1, "v": "x" * 300}]


@pytest.mark.parametrize(
    ("frame", "records", "size", "message"),
    [
        (_frame(write_checksum=0), 1, len(_RECORD), "no content checksum"),
        (_frame() * 2, 2, 2 * len(_RECORD), "exactly one frame"),
        # A skippable frame (RFC 8878 §3.1.2) after the frame is still a second frame.
        (_frame() + b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"skip", 1, len(_RECORD),
         "exactly one frame"),
        (_frame() + b"\x00", 1, len(_RECORD), "exactly one frame"),
        (_frame()[:-4], 1, len(_RECORD), "middle of its zstd frame"),  # checksum cut off
        (_frame(window_log=24), 1, len(_RECORD), "16,777,216-byte window"),
        (b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"skip" + _frame(), 1, len(_RECORD),
         "does not start with a zstd frame"),
    ],
    ids=["no-checksum", "two-frames", "skippable-after", "garbage-after", "checksum-cut",
         "window-16MiB", "skippable-first"],
)
def test_the_payload_must_be_one_zstd_frame_with_a_checksum(
        tmp_path, site, community, frame, records, size, message):
    p = _signed_frame(tmp_path, site, community, frame, records=records, uncompressed=size)
    verify(p)  # signed and intact: only reading the payload finds the problem
    with pytest.raises(CorruptBundle, match=message) as e:
        _open_all(p, community)
    assert type(e.value) is CorruptBundle and str(p) in str(e.value)


def test_a_frame_header_split_across_reads_is_parsed(monkeypatch, tmp_path, site, community):
    """The frame walker gets the age plaintext in whatever pieces age returns."""
    from bundlekit import reader

    small = 3  # smaller than a block header and the frame header

    class Trickle(reader._OneFrame):
        def readinto(self, buf):
            return super().readinto(memoryview(buf)[:small])

    monkeypatch.setattr(reader, "_OneFrame", Trickle)
    records_ = make_records(50)
    from bundlekit import records as rec

    packed = b"".join(rec.packb(r) for r in records_)
    frame = _frame(packed)
    good = _signed_frame(tmp_path, site, community, frame, records=50, uncompressed=len(packed))
    assert _open_all(good, community) == records_
    two = _signed_frame(tmp_path, site, community, frame * 2, records=100,
                        uncompressed=2 * len(packed))
    with pytest.raises(CorruptBundle, match="exactly one frame"):
        _open_all(two, community)


def test_a_damaged_frame_is_not_reported_as_a_bad_record(tmp_path, site, community):
    frame = bytearray(_frame(_RECORD * 20))
    frame[-6] ^= 0xFF  # inside the last block, not a block header: the checksum catches it
    p = _signed_frame(tmp_path, site, community, bytes(frame), records=20,
                      uncompressed=20 * len(_RECORD))
    with pytest.raises(CorruptBundle, match="compressed data is damaged"):
        _open_all(p, community)


# --- FORMAT.md §4.2: "check every field as in §4.1"


@pytest.mark.parametrize(
    "change",
    [
        {"bundle_id": __import__("uuid").UUID("12345678-1234-1234-9234-567812345678")},  # v1
        {"bundle_id": __import__("uuid").UUID(int=0)},
        {"recipients": ("central-server",)},
        {"recipients": ("6617-0AC5-B704-F02F-D990-E24E-963F-F29C",)},
        {"first_key": [1, 2]},
    ],
    ids=["uuid-version-1", "nil-uuid", "recipient-name", "recipient-upper-case", "list-key"],
)
def test_manifest_fields_are_checked_as_the_spec_says(tmp_path, site, community, change):
    p = _signed_frame(tmp_path, site, community, _frame(), records=1, uncompressed=len(_RECORD),
                      **change)
    with pytest.raises(CorruptBundle, match="manifest is malformed"):
        read_manifest(p)
    with pytest.raises(CorruptBundle):
        verify(p)
