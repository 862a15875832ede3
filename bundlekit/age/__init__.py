"""age v1 file encryption (X25519 recipients) on top of ``cryptography``.

Implements the format of https://age-encryption.org/v1 (C2SP ``age.md``) so
bundles can be opened with the standard ``age`` tool when bundlekit is not at
hand.  Only the X25519 recipient type is supported; stanzas of other types are
skipped when decrypting, as the spec requires.

    w = age.encrypt([recipient_pub], dst)
    w.write(data); w.close()
    r = age.decrypt([identity_secret], src)
    data = r.read()
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import BinaryIO

from .errors import AgeError, HeaderError, NoIdentityMatch, PayloadError, TruncatedPayload
from .header import marshal_header, parse_header
from .primitives import hkdf_sha256
from .stream import CHUNK_SIZE, NONCE_SIZE, StreamReader, StreamWriter, read_full, write_all
from .x25519 import (
    FILE_KEY_SIZE,
    X25519Identity,
    decode_identity,
    decode_recipient,
    encode_identity,
    encode_recipient,
    public_from_secret,
    wrap,
)

__all__ = [
    "CHUNK_SIZE",
    "AgeError",
    "HeaderError",
    "NoIdentityMatch",
    "PayloadError",
    "StreamReader",
    "StreamWriter",
    "TruncatedPayload",
    "decode_identity",
    "decode_recipient",
    "decrypt",
    "encode_identity",
    "encode_recipient",
    "encrypt",
    "public_from_secret",
]

# age.md, "Payload": payload key = HKDF-SHA-256(ikm = file key, salt = nonce, info = "payload")
PAYLOAD_INFO = b"payload"
# age.md, "The scrypt recipient type": an scrypt stanza MUST be the only one.
_SCRYPT_TYPE = "scrypt"


def encrypt(recipients: Sequence[bytes], dst: BinaryIO) -> StreamWriter:
    """Write the header and payload nonce to dst now; return the payload writer.

    The writer must be closed (or used as a context manager) to write the
    final chunk; without it the file reads as truncated, which is what an
    interrupted encryption should look like.
    """
    if not recipients:
        raise ValueError("age.encrypt needs at least one recipient")
    file_key = os.urandom(FILE_KEY_SIZE)
    # Wrap for every recipient before writing, so a bad key writes nothing.
    stanzas = [wrap(file_key, r) for r in recipients]
    nonce = os.urandom(NONCE_SIZE)
    write_all(dst, marshal_header(stanzas, file_key) + nonce)
    return StreamWriter(hkdf_sha256(file_key, nonce, PAYLOAD_INFO), dst)


def decrypt(identities: Sequence[bytes], src: BinaryIO) -> StreamReader:
    """Read and authenticate the header now; return a reader of the plaintext.

    Header problems surface here, before anything else reads from src;
    payload problems surface from the reader's read calls.
    """
    if not identities:
        raise ValueError("age.decrypt needs at least one identity")
    keys = [X25519Identity(i) for i in identities]
    header = parse_header(src)
    if len(header.stanzas) > 1 and any(s.type == _SCRYPT_TYPE for s in header.stanzas):
        raise HeaderError("age header mixes an scrypt stanza with other stanzas")
    file_key = _unwrap(keys, header.stanzas)
    # The MAC is checked only once we hold the file key it is keyed with.
    header.verify_mac(file_key)
    nonce = read_full(src, NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise TruncatedPayload("age payload ends before its nonce")
    return StreamReader(hkdf_sha256(file_key, nonce, PAYLOAD_INFO), src)


def _unwrap(keys: list[X25519Identity], stanzas) -> bytes:
    for key in keys:
        for stanza in stanzas:
            file_key = key.unwrap(stanza)
            if file_key is not None:
                return file_key
    raise NoIdentityMatch("none of the identities can decrypt this age file")
