"""Encrypt and decrypt in memory: the API the bundle layer codes against."""

import io
import os
import random

import pytest
import zstandard

from bundlekit import age

CHUNK = age.CHUNK_SIZE


def keypair():
    secret = os.urandom(32)
    return secret, age.public_from_secret(secret)


def seal(plaintext, *recipients):
    dst = io.BytesIO()
    with age.encrypt(list(recipients), dst) as w:
        w.write(plaintext)
    return dst.getvalue()


def open_(ciphertext, *identities):
    return age.decrypt(list(identities), io.BytesIO(ciphertext))


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, random.Random(1).randrange(4 * CHUNK)]
)
def test_round_trip(size):
    secret, pub = keypair()
    plaintext = os.urandom(size)
    assert open_(seal(plaintext, pub), secret).read() == plaintext


@pytest.mark.parametrize("size", [0, 1, CHUNK, 3 * CHUNK])
def test_file_size_is_header_nonce_and_one_tag_per_chunk(size):
    _, pub = keypair()
    sealed = seal(os.urandom(size), pub)
    header_end = sealed.index(b"\n---") + len(b"\n--- ") + 43 + 1
    chunks = max(1, -(-size // CHUNK))
    assert len(sealed) == header_end + 16 + size + 16 * chunks


def test_writes_of_any_size_give_the_same_plaintext():
    secret, pub = keypair()
    plaintext = os.urandom(3 * CHUNK + 123)
    dst = io.BytesIO()
    rng = random.Random(7)
    with age.encrypt([pub], dst) as w:
        pos = 0
        while pos < len(plaintext):
            n = rng.choice([0, 1, 100, CHUNK - 1, CHUNK, CHUNK + 1])
            assert w.write(memoryview(plaintext)[pos : pos + n]) == len(plaintext[pos : pos + n])
            pos += n
    assert open_(dst.getvalue(), secret).read() == plaintext


def test_every_recipient_can_decrypt():
    keys = [keypair() for _ in range(3)]
    plaintext = b"one file, three readers"
    sealed = seal(plaintext, *(pub for _, pub in keys))
    for secret, _ in keys:
        assert open_(sealed, secret).read() == plaintext


def test_any_of_several_identities_may_match():
    (mine, pub), (other, _) = keypair(), keypair()
    assert open_(seal(b"x", pub), other, mine).read() == b"x"


def test_wrong_identity_is_no_match():
    _, pub = keypair()
    stranger, _ = keypair()
    with pytest.raises(age.NoIdentityMatch):
        open_(seal(b"not for you", pub), stranger)


def test_header_is_written_before_any_data():
    _, pub = keypair()
    dst = io.BytesIO()
    w = age.encrypt([pub], dst)
    assert dst.getvalue().startswith(b"age-encryption.org/v1\n-> X25519 ")
    w.close()


def test_close_does_not_close_dst_and_is_idempotent():
    _, pub = keypair()
    dst = io.BytesIO()
    w = age.encrypt([pub], dst)
    w.write(b"data")
    w.close()
    w.close()
    assert not dst.closed
    with pytest.raises(ValueError):
        w.write(b"more")


def test_exception_in_with_block_leaves_a_truncated_file():
    # An interrupted encryption must not look complete to the reader.
    secret, pub = keypair()
    dst = io.BytesIO()
    with pytest.raises(RuntimeError), age.encrypt([pub], dst) as w:
        w.write(os.urandom(2 * CHUNK))
        raise RuntimeError("disk full")
    with pytest.raises(age.TruncatedPayload):
        open_(dst.getvalue(), secret).read()


def test_reader_is_a_file_object():
    secret, pub = keypair()
    plaintext = os.urandom(2 * CHUNK + 10)
    r = open_(seal(plaintext, pub), secret)
    assert isinstance(r, io.RawIOBase) and r.readable()
    # Reads are filled across chunk boundaries; short only at the end.
    assert r.read(10) == plaintext[:10]
    buf = bytearray(CHUNK)
    assert r.readinto(buf) == CHUNK
    assert bytes(buf) == plaintext[10 : CHUNK + 10]
    assert r.read(0) == b""
    assert r.read() == plaintext[CHUNK + 10 :]
    assert r.read(1) == b""
    assert r.readinto(buf) == 0


def test_zstandard_reads_through_the_decryptor():
    secret, pub = keypair()
    plaintext = b"record " * 50_000
    dst = io.BytesIO()
    with age.encrypt([pub], dst) as w:
        with zstandard.ZstdCompressor().stream_writer(w, closefd=False) as z:
            z.write(plaintext)
    r = open_(dst.getvalue(), secret)
    with zstandard.ZstdDecompressor().stream_reader(r) as z:
        assert z.read() == plaintext


def test_buffered_reader_on_top():
    secret, pub = keypair()
    plaintext = b"line one\nline two\n" * 10_000
    r = io.BufferedReader(open_(seal(plaintext, pub), secret))
    assert r.readline() == b"line one\n"
    assert r.read() == plaintext[len(b"line one\n") :]


def test_misuse_is_a_value_error():
    secret, pub = keypair()
    with pytest.raises(ValueError):
        age.encrypt([], io.BytesIO())
    with pytest.raises(ValueError):
        age.encrypt([pub[:31]], io.BytesIO())
    with pytest.raises(ValueError):
        age.decrypt([], io.BytesIO(seal(b"", pub)))


def test_low_order_recipient_is_refused_and_nothing_is_written():
    dst = io.BytesIO()
    with pytest.raises(ValueError):
        age.encrypt([keypair()[1], bytes(32)], dst)
    assert dst.getvalue() == b""


def test_each_file_gets_fresh_keys():
    _, pub = keypair()
    assert seal(b"same", pub) != seal(b"same", pub)


class Trickle(io.RawIOBase):
    """A pipe-like stream: reads and writes move at most a few bytes at a time."""

    def __init__(self, data=b"", step=1000):
        self.data, self.pos, self.step, self.written = data, 0, step, bytearray()

    def readable(self):
        return True

    def writable(self):
        return True

    def readinto(self, buf):
        n = min(len(buf), self.step, len(self.data) - self.pos)
        buf[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n

    def write(self, b):
        n = min(len(b), self.step)
        self.written += bytes(b[:n])
        return n


def test_short_reads_and_short_writes_are_completed():
    secret, pub = keypair()
    plaintext = os.urandom(2 * CHUNK + 3)
    dst = Trickle(step=999)
    with age.encrypt([pub], dst) as w:
        w.write(plaintext)
    src = io.BufferedReader(Trickle(bytes(dst.written), step=999), buffer_size=4096)
    assert age.decrypt([secret], src).read() == plaintext
    raw = Trickle(bytes(dst.written), step=999)
    # readline on a raw stream goes byte by byte; the header still parses.
    assert age.decrypt([secret], raw).read() == plaintext
