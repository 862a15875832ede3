"""The two key derivations age builds everything else on.

Kept apart so header, stanza and payload code derive keys the same way; the
spec fixes HKDF-SHA-256 with 32 bytes of output everywhere (age.md,
"Conventions used in this document").
"""

from __future__ import annotations

import hmac as _hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_SIZE = 32


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=info).derive(ikm)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    h = HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare MACs without leaking how many leading bytes matched."""
    return _hmac.compare_digest(a, b)
