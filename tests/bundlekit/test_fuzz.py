"""Whatever bytes arrive on a stick, the reader answers with a BundleError, nothing else."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bundlekit import container
from bundlekit.errors import BundleError
from bundlekit.keys import Identity
from bundlekit.manifest import Manifest
from bundlekit.reader import open_bundle, read_manifest, verify
from bundlekit.writer import ChainLink, seal

from .conftest import FIXED_TIME

SITE = Identity.generate("fuzz-site")
SERVER = Identity.generate("fuzz-server")
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("fuzz")
    (sealed,) = seal([{"id": 1, "model": "m", "v": "x"}, {"id": 2, "model": "n"}], identity=SITE,
                     recipients=[SERVER.public], out_dir=out, after=ChainLink(0, None),
                     created=FIXED_TIME)
    with open(sealed.path, "rb") as f:
        return f.read()


def _all_readers_refuse_cleanly(path) -> None:
    for read in (read_manifest, verify, _open_all):
        try:
            read(path)
        except BundleError:
            pass


def _open_all(path) -> None:
    with open_bundle(path, [SERVER]) as bundle:
        list(bundle)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes(tmp_path, data):
    p = tmp_path / "random.bundle"
    p.write_bytes(data)
    _all_readers_refuse_cleanly(p)


@FUZZ
@given(body=st.binary(max_size=1024), p_len=st.integers(0, 2**64 - 1), m_len=st.integers(0, 2**32 - 1))
def test_random_bytes_in_a_well_formed_frame(tmp_path, body, p_len, m_len):
    """Past the magic and footer checks, so the deeper parsers get fuzzed too."""
    data = container.MAGIC + body + p_len.to_bytes(8, "big") + m_len.to_bytes(4, "big")
    p = tmp_path / "framed.bundle"
    p.write_bytes(data + container.END_MAGIC)
    _all_readers_refuse_cleanly(p)


@FUZZ
@given(st.data())
def test_mutated_bundles(tmp_path, good, data):
    mutated = bytearray(good)
    for _ in range(data.draw(st.integers(1, 8))):
        action = data.draw(st.sampled_from(["flip", "delete", "insert", "cut"]))
        i = data.draw(st.integers(0, max(len(mutated) - 1, 0)))
        if action == "flip" and mutated:
            mutated[i] ^= data.draw(st.integers(1, 255))
        elif action == "delete":
            del mutated[i : i + data.draw(st.integers(1, 64))]
        elif action == "insert":
            mutated[i:i] = data.draw(st.binary(min_size=1, max_size=64))
        else:
            del mutated[i:]
    p = tmp_path / "mutated.bundle"
    p.write_bytes(bytes(mutated))
    _all_readers_refuse_cleanly(p)


@FUZZ
@given(st.binary(max_size=4096))
def test_manifest_parser_is_strict_and_total(data):
    try:
        Manifest.from_bytes(data)
    except BundleError:
        pass


@FUZZ
@given(st.data())
def test_mutated_manifests(good, data):
    footer = good[-container.FOOTER_SIZE :]
    m_len = int.from_bytes(footer[8:12], "big")
    start = len(good) - container.FOOTER_SIZE - container.SIGNATURE_SIZE - m_len
    manifest = bytearray(good[start : start + m_len])
    i = data.draw(st.integers(0, len(manifest) - 1))
    manifest[i] = data.draw(st.integers(0, 255))
    try:
        Manifest.from_bytes(bytes(manifest))
    except BundleError:
        pass


def _signed_by_site(tmp_path, plaintext: bytes, *, records: int = 1, uncompressed: int = 1) -> str:
    """A correctly signed bundle around any age plaintext: what a malicious sender could make."""
    import hashlib
    import io
    import uuid

    from bundlekit import age
    from bundlekit.manifest import bundle_digest, sign

    buf = io.BytesIO()
    w = age.encrypt([SERVER.public.x25519], buf)
    w.write(plaintext)
    w.close()
    payload = buf.getvalue()
    manifest = Manifest(
        bundle_id=uuid.uuid4(), sender=SITE.public, recipients=(SERVER.public.fingerprint,),
        seq=1, prev=None, created=FIXED_TIME, record_count=records, kinds={}, key_field="id",
        kind_field="model", first_key=None, last_key=None, uncompressed_size=uncompressed,
        compressed_size=max(len(plaintext), 1), payload_size=len(payload),
        payload_sha256=hashlib.sha256(payload).digest(),
    ).to_bytes()
    sig = sign(SITE, manifest)
    assert bundle_digest(manifest, sig)
    p = tmp_path / "signed.bundle"
    p.write_bytes(container.MAGIC + payload + container.trailer(len(payload), manifest, sig))
    return str(p)


def test_a_signed_decompression_bomb_is_stopped_early(tmp_path):
    import zstandard

    bomb = zstandard.ZstdCompressor().compress(b"\x00" * (64 * 1024 * 1024))
    path = _signed_by_site(tmp_path, bomb, records=1, uncompressed=10)
    with pytest.raises(BundleError, match="larger than its manifest says"):
        _open_all(path)


@FUZZ
@given(plain=st.binary(max_size=512), records=st.integers(1, 5), size=st.integers(1, 600))
def test_signed_garbage_inside_the_encryption(tmp_path, plain, records, size):
    """Past signature and digest: age, zstd and msgpack decoding get arbitrary input."""
    path = _signed_by_site(tmp_path, plain, records=records, uncompressed=size)
    with pytest.raises(BundleError):
        _open_all(path)


@FUZZ
@given(packed=st.binary(max_size=256), records=st.integers(1, 5))
def test_signed_valid_zstd_around_garbage_records(tmp_path, packed, records):
    import zstandard

    frame = zstandard.ZstdCompressor(write_checksum=True).compress(packed)
    path = _signed_by_site(tmp_path, frame, records=records, uncompressed=max(len(packed), 1))
    try:
        _open_all(path)
    except BundleError:
        pass
