"""Fuzz targets shared by the hypothesis tests and the atheris run: each takes
bytes and must either succeed or raise the documented error of its parser."""

from __future__ import annotations

import io
import os
import tempfile

from bundlekit.errors import BundleError, ReceiptError
from bundlekit.keys import Identity
from bundlekit.manifest import Manifest
from bundlekit.reader import open_bundle, verify
from bundlekit.receipt import decode_receipt, encode_receipt
from bundlekit.writer import ChainLink, seal

SITE = Identity.generate("site-a")
CENTRAL = Identity.generate("central")


def sample_bundle() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        recs = [{"id": i, "model": "lab.x", "v": "x" * (i % 7)} for i in range(20)]
        (b,) = seal(recs, identity=SITE, recipients=[CENTRAL.public], out_dir=d,
                    after=ChainLink(0, None))
        with open(b.path, "rb") as f:
            return f.read()


def sample_receipt() -> bytes:
    import uuid

    entries = [{"bundle_id": uuid.uuid4(), "seq": i, "digest": os.urandom(32), "status": "applied",
                "records": 3} for i in range(1, 4)]
    return encode_receipt(issuer=CENTRAL, subject=SITE.public, entries=entries)


def read_bundle(data: bytes, folder: str) -> bool:
    """verify() then open_bundle() over every record; BundleError only."""
    path = os.path.join(folder, "fuzz.bundle")
    with open(path, "wb") as f:
        f.write(data)
    try:
        verify(path)
        with open_bundle(path, identities=[CENTRAL]) as b:
            for _ in b:
                pass
    except BundleError:
        return False
    return True


def parse_manifest(data: bytes) -> bool:
    try:
        Manifest.from_bytes(data)
    except BundleError:
        return False
    return True


def parse_receipt(data: bytes) -> bool:
    try:
        decode_receipt(data, trusted_issuers=[CENTRAL.public], me=SITE)
    except ReceiptError:
        return False
    return True


def manifest_bytes(bundle: bytes) -> bytes:
    from bundlekit import container

    return container.read_layout(io.BytesIO(bundle)).manifest
