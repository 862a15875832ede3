"""The X25519 recipient type: key strings, wrapping and unwrapping the file key.

Everything here follows age.md, "The X25519 recipient type".
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from . import bech32
from .errors import HeaderError
from .header import Stanza, b64decode, b64encode
from .primitives import hkdf_sha256

# age.md, "The X25519 recipient type": Bech32 HRPs of the two key strings.
RECIPIENT_HRP = "age"
IDENTITY_HRP = "AGE-SECRET-KEY-"
# age.md, "X25519 recipient stanza": first argument and HKDF info.
STANZA_TYPE = "X25519"
LABEL = b"age-encryption.org/v1/X25519"

KEY_SIZE = 32
FILE_KEY_SIZE = 16
# The wrapped file key: 16 bytes plus the 16-byte Poly1305 tag.
BODY_SIZE = FILE_KEY_SIZE + 16
# age.md: "the ChaCha20-Poly1305 nonce is fixed as 12 0x00 bytes".
_ZERO_NONCE = bytes(12)


def _key_bytes(key: bytes, what: str) -> bytes:
    key = bytes(key)
    if len(key) != KEY_SIZE:
        raise ValueError(f"{what} must be {KEY_SIZE} bytes, got {len(key)}")
    return key


def encode_recipient(pub: bytes) -> str:
    return bech32.encode(RECIPIENT_HRP, _key_bytes(pub, "X25519 public key"))


def decode_recipient(s: str) -> bytes:
    hrp, data = bech32.decode(s)
    # Exact match, so "AGE1..." is refused as the Go implementation refuses it.
    if hrp != RECIPIENT_HRP:
        raise ValueError("not an age X25519 recipient (expected 'age1...')")
    return _key_bytes(data, "age recipient")


def encode_identity(secret: bytes) -> str:
    return bech32.encode(IDENTITY_HRP, _key_bytes(secret, "X25519 secret key"))


def decode_identity(s: str) -> bytes:
    hrp, data = bech32.decode(s)
    if hrp != IDENTITY_HRP:
        raise ValueError("not an age X25519 identity (expected 'AGE-SECRET-KEY-1...')")
    return _key_bytes(data, "age identity")


def public_from_secret(secret: bytes) -> bytes:
    key = X25519PrivateKey.from_private_bytes(_key_bytes(secret, "X25519 secret key"))
    return key.public_key().public_bytes_raw()


def _wrap_key(shared: bytes, share: bytes, recipient: bytes) -> ChaCha20Poly1305:
    # salt = ephemeral share || recipient
    return ChaCha20Poly1305(hkdf_sha256(shared, share + recipient, LABEL))


def wrap(file_key: bytes, recipient: bytes) -> Stanza:
    """Wrap the file key for one recipient with a fresh ephemeral key."""
    recipient = _key_bytes(recipient, "X25519 recipient")
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    try:
        # cryptography refuses an all-zero shared secret (a low-order point).
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    except ValueError:
        raise ValueError("invalid X25519 recipient (low-order point)") from None
    body = _wrap_key(shared, share, recipient).encrypt(_ZERO_NONCE, file_key, None)
    return Stanza(STANZA_TYPE, (b64encode(share).decode("ascii"),), body)


class X25519Identity:
    """An identity ready to try stanzas; derives its public key once per file."""

    def __init__(self, secret: bytes):
        self._key = X25519PrivateKey.from_private_bytes(_key_bytes(secret, "X25519 secret key"))
        self._public = self._key.public_key().public_bytes_raw()

    def unwrap(self, stanza: Stanza) -> bytes | None:
        """The file key, or None when the stanza is not addressed to us.

        A malformed X25519 stanza is an error, not a mismatch: the spec says
        such stanzas MUST be rejected.
        """
        if stanza.type != STANZA_TYPE:
            return None
        if len(stanza.args) != 1:
            raise HeaderError("invalid X25519 stanza: wrong number of arguments")
        try:
            share = b64decode(stanza.args[0].encode("ascii"))
        except ValueError:
            raise HeaderError("invalid X25519 stanza: malformed ephemeral share") from None
        if len(share) != KEY_SIZE:
            raise HeaderError("invalid X25519 stanza: ephemeral share is not 32 bytes")
        # Checked before decrypting to mitigate partitioning oracle attacks.
        if len(stanza.body) != BODY_SIZE:
            raise HeaderError("invalid X25519 stanza: body is not 32 bytes")
        try:
            shared = self._key.exchange(X25519PublicKey.from_public_bytes(share))
        except ValueError:
            # age.md: "If the shared secret is all 0x00 bytes, ... MUST abort."
            raise HeaderError("invalid X25519 stanza: low-order ephemeral share") from None
        try:
            return _wrap_key(shared, share, self._public).decrypt(_ZERO_NONCE, stanza.body, None)
        except InvalidTag:
            return None
