"""Malformed, truncated and tampered files: each is refused with a typed error.

The files here are built by hand from the spec's recipe (age.md, "Header" and
"Payload") so each test can break exactly one rule and keep the rest valid,
MAC included.
"""

import base64
import io
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from bundlekit import age
from bundlekit.age import stream, x25519
from bundlekit.age.header import Stanza, b64encode
from bundlekit.age.primitives import hkdf_sha256, hmac_sha256

CHUNK = age.CHUNK_SIZE
SECRET = os.urandom(32)
PUB = age.public_from_secret(SECRET)


def header_with_mac(text: bytes, file_key: bytes) -> bytes:
    """Append a correct MAC line to header text that ends just before '---'."""
    signed = text + b"---"
    mac = hmac_sha256(hkdf_sha256(file_key, b"", b"header"), signed)
    return signed + b" " + b64encode(mac) + b"\n"


def stanza_text(file_key: bytes) -> bytes:
    return x25519.wrap(file_key, PUB).marshal()


def payload(file_key: bytes, chunks: list[tuple[bytes, bool]]) -> bytes:
    """The nonce and the given (plaintext, is-last) chunks, sealed in order."""
    nonce = os.urandom(16)
    aead = ChaCha20Poly1305(hkdf_sha256(file_key, nonce, b"payload"))
    sealed = [
        aead.encrypt(i.to_bytes(11, "big") + (b"\x01" if last else b"\x00"), pt, None)
        for i, (pt, last) in enumerate(chunks)
    ]
    return nonce + b"".join(sealed)


def build(chunks, stanzas: bytes | None = None, file_key: bytes | None = None) -> bytes:
    file_key = file_key or os.urandom(16)
    if stanzas is None:
        stanzas = stanza_text(file_key)
    text = b"age-encryption.org/v1\n" + stanzas
    return header_with_mac(text, file_key) + payload(file_key, chunks)


def decrypt_all(data: bytes, *identities: bytes) -> bytes:
    return age.decrypt(list(identities or [SECRET]), io.BytesIO(data)).read()


FULL = b"\xaa" * CHUNK


def test_hand_built_file_decrypts():
    assert decrypt_all(build([(FULL, False), (b"end", True)])) == FULL + b"end"


# --- payload ---------------------------------------------------------------


def test_missing_final_chunk_is_truncation():
    with pytest.raises(age.TruncatedPayload):
        decrypt_all(build([(FULL, False), (FULL, False)]))


def test_no_chunk_at_all_is_truncation():
    with pytest.raises(age.TruncatedPayload):
        decrypt_all(build([]))


def test_missing_nonce_is_truncation():
    data = build([(b"x", True)])
    header_len = data.index(b"\n---") + len(b"\n--- ") + 44
    with pytest.raises(age.TruncatedPayload):
        decrypt_all(data[: header_len + 15])


def test_trailing_data_after_final_chunk():
    for last in (FULL, b"short"):
        data = build([(last, True)]) + b"\x00"
        with pytest.raises(age.PayloadError) as info:
            decrypt_all(data)
        assert not isinstance(info.value, age.TruncatedPayload)


def test_a_second_file_glued_on_is_refused():
    file_key = os.urandom(16)
    data = build([(FULL, True)], file_key=file_key)
    with pytest.raises(age.PayloadError):
        decrypt_all(data + data[-(CHUNK + 16) :])


def test_short_chunk_that_is_not_last():
    with pytest.raises(age.PayloadError):
        decrypt_all(build([(b"short", False), (b"end", True)]))


def test_empty_chunk_that_is_not_last():
    with pytest.raises(age.PayloadError):
        decrypt_all(build([(b"", False), (b"end", True)]))


def test_empty_final_chunk_after_data():
    # age.md: the final chunk "MUST NOT be empty unless the whole payload is empty".
    with pytest.raises(age.PayloadError):
        decrypt_all(build([(FULL, False), (b"", True)]))


def test_empty_payload_is_one_empty_final_chunk():
    assert decrypt_all(build([(b"", True)])) == b""


def test_chunks_out_of_order():
    file_key = os.urandom(16)
    good = build([(FULL, False), (b"\xbb" * CHUNK, False), (b"end", True)], file_key=file_key)
    body_start = len(good) - (2 * (CHUNK + 16) + 3 + 16)
    c1 = good[body_start : body_start + CHUNK + 16]
    c2 = good[body_start + CHUNK + 16 : body_start + 2 * (CHUNK + 16)]
    swapped = good[:body_start] + c2 + c1 + good[body_start + 2 * (CHUNK + 16) :]
    with pytest.raises(age.PayloadError):
        decrypt_all(swapped)


def test_counter_overflow(monkeypatch):
    monkeypatch.setattr(stream, "_MAX_COUNTER", 1)
    with pytest.raises(age.PayloadError):
        decrypt_all(build([(FULL, False), (FULL, False), (b"end", True)]))


def test_failed_chunk_yields_no_plaintext_and_stays_failed():
    data = bytearray(build([(FULL, False), (b"\xbb" * CHUNK, False), (b"end", True)]))
    data[-(3 + 16) - (CHUNK + 16) + 20] ^= 1  # inside the second chunk
    r = age.decrypt([SECRET], io.BytesIO(bytes(data)))
    assert r.read(CHUNK) == FULL
    with pytest.raises(age.PayloadError):
        r.read(1)
    with pytest.raises(age.PayloadError):
        r.read()


# --- every truncation and every flipped byte ---------------------------------


def small_file() -> bytes:
    dst = io.BytesIO()
    with age.encrypt([PUB], dst) as w:
        w.write(b"a small record set")
    return dst.getvalue()


def test_every_truncation_is_an_age_error():
    data = small_file()
    for cut in range(len(data)):
        with pytest.raises(age.AgeError):
            decrypt_all(data[:cut])


def test_truncation_at_a_chunk_boundary_is_reported_as_truncation():
    dst = io.BytesIO()
    with age.encrypt([PUB], dst) as w:
        w.write(os.urandom(2 * CHUNK + 1))
    data = dst.getvalue()
    for end in (len(data) - 17, len(data) - 17 - (CHUNK + 16)):
        with pytest.raises(age.TruncatedPayload):
            decrypt_all(data[:end])


def test_every_flipped_byte_is_an_age_error():
    data = small_file()
    payload_start = data.index(b"\n---") + len(b"\n--- ") + 44
    for i in range(len(data)):
        for bit in (0x01, 0x80):
            tampered = bytearray(data)
            tampered[i] ^= bit
            expected = age.PayloadError if i >= payload_start + 16 else age.AgeError
            with pytest.raises(expected):
                decrypt_all(bytes(tampered))


# --- header ----------------------------------------------------------------


def noncanonical(b64: bytes) -> bytes:
    """Set an unused low bit in the last character (RFC 4648, 3.5): same bytes, other text."""
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    i = alphabet.index(b64[-1]) | 1
    return b64[:-1] + alphabet[i : i + 1]


SCRYPT = b"-> scrypt c2FsdHNhbHRzYWx0c2FsdA 10\n" + b64encode(os.urandom(32)) + b"\n"

# Each case breaks one rule of the header ABNF or of the X25519 stanza rules
# (age.md, "X25519 recipient stanza"); the MAC is recomputed so it stays valid.
MALFORMED_STANZAS = {
    "padded share": lambda line, body: line + b"=\n" + body + b"\n",
    "non-canonical share": lambda line, body: (
        line.replace(line.split(b" ")[2], noncanonical(line.split(b" ")[2])) + b"\n" + body + b"\n"
    ),
    "non-canonical body": lambda line, body: line + b"\n" + noncanonical(body) + b"\n",
    "padded body": lambda line, body: line + b"\n" + body + b"=\n",
    "extra argument": lambda line, body: line + b" extra\n" + body + b"\n",
    "no argument": lambda line, body: b"-> X25519\n" + body + b"\n",
    "double space": lambda line, body: line.replace(b" X25519", b"  X25519") + b"\n" + body + b"\n",
    "short body": lambda line, body: line + b"\n" + b64encode(os.urandom(31)) + b"\n",
    "long body": lambda line, body: line + b"\n" + b64encode(os.urandom(33)) + b"\n",
    "missing body line": lambda line, body: line + b"\n",
    "all-zero share": lambda line, body: (
        b"-> X25519 " + b64encode(bytes(32)) + b"\n" + body + b"\n"
    ),
    "CRLF": lambda line, body: line + b"\r\n" + body + b"\r\n",
    "body line over 64 columns": lambda line, body: (
        line + b"\n" + b64encode(os.urandom(51)) + b"\n"
    ),
    "full line without final line": lambda line, body: (
        line + b"\n" + b64encode(os.urandom(48)) + b"\n"
    ),
    "control character": lambda line, body: line + b"\x01\n" + body + b"\n",
    "no stanza at all": lambda line, body: b"",
    "scrypt mixed with X25519": lambda line, body: line + b"\n" + body + b"\n" + SCRYPT,
}


@pytest.mark.parametrize("case", MALFORMED_STANZAS)
def test_malformed_header_is_refused(case):
    k = os.urandom(16)
    line, body = stanza_text(k).split(b"\n")[:2]
    data = build([(b"x", True)], stanzas=MALFORMED_STANZAS[case](line, body), file_key=k)
    with pytest.raises(age.HeaderError):
        decrypt_all(data)


def test_unknown_stanzas_are_skipped():
    k = os.urandom(16)
    other = Stanza("example.com/enigma", ("arg",), os.urandom(100)).marshal()
    data = build([(b"hello", True)], stanzas=other + stanza_text(k) + other, file_key=k)
    assert decrypt_all(data) == b"hello"


def test_empty_and_full_line_bodies_are_well_formed():
    k = os.urandom(16)
    stanzas = (
        Stanza("example.com/empty", ("a",), b"").marshal()
        + Stanza("example.com/full", ("a",), os.urandom(96)).marshal()
        + stanza_text(k)
    )
    assert stanzas.count(b"\n\n") == 2  # both bodies end with an empty final line
    assert decrypt_all(build([(b"ok", True)], stanzas=stanzas, file_key=k)) == b"ok"


def test_only_foreign_stanzas_is_no_match():
    # A passphrase-encrypted file: well formed, but we hold no passphrase identity.
    with pytest.raises(age.NoIdentityMatch):
        decrypt_all(build([(b"x", True)], stanzas=SCRYPT))


def test_header_edits_break_the_mac():
    data = small_file()
    extra = Stanza("example.com/enigma", ("arg",), b"body").marshal()
    at = data.index(b"---")
    with pytest.raises(age.HeaderError):
        decrypt_all(data[:at] + extra + data[at:])


def test_mac_line_rules():
    data = small_file()
    at = data.index(b"--- ") + 4
    mac = data[at : at + 43]
    for bad in (
        data[:at] + noncanonical(mac) + data[at + 43 :],
        data[:at] + mac + b"=" + data[at + 43 :],
        data[: at - 1] + b"  " + mac + data[at + 43 :],
        data[:at] + mac[:-2] + data[at + 43 :],
    ):
        with pytest.raises(age.HeaderError):
            decrypt_all(bad)


@pytest.mark.parametrize(
    "intro",
    [b"", b"age-encryption.org/v2\n", b"age-encryption.org/v1\r\n", b"AGE-ENCRYPTION.ORG/V1\n"],
)
def test_version_line(intro):
    data = small_file()
    with pytest.raises(age.HeaderError):
        decrypt_all(intro + data[len(b"age-encryption.org/v1\n") :])


def test_an_armored_file_is_not_accepted_as_binary():
    armored = b"-----BEGIN AGE ENCRYPTED FILE-----\n" + base64.b64encode(small_file())
    with pytest.raises(age.HeaderError):
        decrypt_all(armored)
