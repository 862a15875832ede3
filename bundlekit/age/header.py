"""The textual age header: stanzas, the MAC line, and strict base64.

Parsing follows the ABNF in age.md ("ABNF definition of file header") exactly,
the way the Go implementation does: anything that is not byte-for-byte what a
conforming encoder writes is rejected, because a header that parses in more
than one way is a malleability hole.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import BinaryIO

from .errors import HeaderError
from .primitives import constant_time_equal, hkdf_sha256, hmac_sha256

# age.md, "Version line": the v1 header starts with exactly this line.
INTRO = b"age-encryption.org/v1\n"
# age.md, "Recipient stanza": arg-line = "-> " argument *(SP argument) LF
STANZA_PREFIX = b"-> "
# age.md, "Header MAC": the MAC covers the header up to and including "---".
MAC_PREFIX = b"---"
# age.md, "Recipient stanza": bodies are base64 wrapped at 64 columns.
COLUMNS_PER_LINE = 64
BYTES_PER_LINE = COLUMNS_PER_LINE // 4 * 3
# age.md, "Header MAC": HMAC key = HKDF-SHA-256(ikm = file key, salt = empty, info = "header")
HEADER_INFO = b"header"
MAC_SIZE = 32

# Our own limits, not the spec's: they bound memory spent on a hostile file.
# The longest native stanza argument (mlkem768p256tag) is about 1.6 KB.
MAX_LINE_BYTES = 64 * 1024
MAX_HEADER_BYTES = 1024 * 1024

_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def b64encode(data: bytes) -> bytes:
    """Standard alphabet, no padding (age.md, "Conventions used in this document")."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=")


def b64decode(s: bytes) -> bytes:
    """Decode, rejecting padding and non-canonical encodings as the spec demands.

    Raises ValueError so each caller can say which part of the header was bad.
    """
    if len(s) % 4 == 1 or not _B64_ALPHABET.issuperset(s):
        raise ValueError("invalid base64")
    data = binascii.a2b_base64(s + b"=" * (-len(s) % 4), strict_mode=True)
    # Unused low bits in the last character must be zero (RFC 4648, 3.5).
    if b64encode(data) != s:
        raise ValueError("non-canonical base64")
    return data


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza: ``-> type args...`` and its binary body."""

    type: str
    args: tuple[str, ...]
    body: bytes

    def marshal(self) -> bytes:
        line = b" ".join(a.encode("ascii") for a in (self.type, *self.args))
        out = bytearray(STANZA_PREFIX + line + b"\n")
        encoded = b64encode(self.body)
        # The body always ends with a line shorter than 64 columns, possibly empty.
        for i in range(0, len(encoded) + 1, COLUMNS_PER_LINE):
            out += encoded[i : i + COLUMNS_PER_LINE] + b"\n"
        return bytes(out)


@dataclass(frozen=True)
class Header:
    stanzas: tuple[Stanza, ...]
    mac: bytes
    #: The header bytes the MAC covers: from the intro up to and including "---".
    signed: bytes

    def verify_mac(self, file_key: bytes) -> None:
        expected = hmac_sha256(hkdf_sha256(file_key, b"", HEADER_INFO), self.signed)
        if not constant_time_equal(expected, self.mac):
            raise HeaderError("age header MAC does not match: the header was altered")


def marshal_header(stanzas: list[Stanza], file_key: bytes) -> bytes:
    """The complete header, MAC line included."""
    signed = INTRO + b"".join(s.marshal() for s in stanzas) + MAC_PREFIX
    mac = hmac_sha256(hkdf_sha256(file_key, b"", HEADER_INFO), signed)
    return signed + b" " + b64encode(mac) + b"\n"


def _is_valid_arg(a: bytes) -> bool:
    # argument = 1*VCHAR
    return bool(a) and all(33 <= c <= 126 for c in a)


class _LineReader:
    """Reads header lines without reading past the header into the payload."""

    def __init__(self, src: BinaryIO):
        self._src = src
        self.consumed = 0

    def line(self) -> bytes:
        line = self._src.readline(MAX_LINE_BYTES)
        self.consumed += len(line)
        if not line.endswith(b"\n"):
            if len(line) == MAX_LINE_BYTES:
                raise HeaderError("age header line is too long")
            raise HeaderError("age header ends early")
        if self.consumed > MAX_HEADER_BYTES:
            raise HeaderError("age header is too long")
        return line


def parse_header(src: BinaryIO) -> Header:
    """Read the header from src, leaving src positioned at the payload nonce."""
    reader = _LineReader(src)
    if reader.line() != INTRO:
        raise HeaderError("not an age v1 file (bad version line)")
    signed = bytearray(INTRO)
    stanzas: list[Stanza] = []
    while True:
        line = reader.line()
        if line.startswith(MAC_PREFIX):
            # end = "--- " 43base64char LF
            if not stanzas:
                raise HeaderError("age header has no recipient stanzas")
            if line[3:4] != b" ":
                raise HeaderError("malformed age header MAC line")
            try:
                mac = b64decode(line[4:-1])
            except ValueError:
                raise HeaderError("malformed age header MAC line") from None
            if len(mac) != MAC_SIZE:
                raise HeaderError("malformed age header MAC line")
            signed += MAC_PREFIX
            return Header(tuple(stanzas), mac, bytes(signed))
        if not line.startswith(STANZA_PREFIX):
            raise HeaderError("unexpected line in age header")
        signed += line
        args = line[len(STANZA_PREFIX) : -1].split(b" ")
        if not all(_is_valid_arg(a) for a in args):
            raise HeaderError("malformed age recipient stanza")
        body = bytearray()
        while True:
            body_line = reader.line()
            signed += body_line
            try:
                chunk = b64decode(body_line[:-1])
            except ValueError:
                raise HeaderError("malformed age stanza body") from None
            if len(chunk) > BYTES_PER_LINE:
                raise HeaderError("age stanza body line is too long")
            body += chunk
            # full-line = 64base64char LF; only the final line is shorter.
            if len(chunk) < BYTES_PER_LINE:
                break
        decoded = [a.decode("ascii") for a in args]
        stanzas.append(Stanza(decoded[0], tuple(decoded[1:]), bytes(body)))
