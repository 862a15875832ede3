"""The age payload: STREAM of 64 KiB ChaCha20-Poly1305 chunks.

age.md, "Payload": each chunk is sealed with a 12-byte nonce made of an 11-byte
big-endian chunk counter and a last-chunk flag byte.  The flag is what makes a
truncated file detectable, so the reader must know whether a chunk is the last
one before it opens it; it reads one chunk ahead to find out.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .errors import PayloadError, TruncatedPayload

# age.md, "Payload": "The payload is split in chunks of 64 KiB".
CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
ENC_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
# age.md, "Payload": the payload starts with a 16-byte nonce from a CSPRNG.
NONCE_SIZE = 16
# age.md, "Payload": 11-byte counter, then 0x01 for the final chunk, else 0x00.
_COUNTER_SIZE = 11
_MAX_COUNTER = (1 << (8 * _COUNTER_SIZE)) - 1
_NOT_LAST = b"\x00"
_LAST = b"\x01"


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(_COUNTER_SIZE, "big") + (_LAST if last else _NOT_LAST)


def read_full(src: BinaryIO, n: int) -> bytes:
    """Read n bytes, or fewer only at EOF: raw streams may return short reads."""
    data = src.read(n) or b""
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = src.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class StreamWriter:
    """Encrypts what is written to it into dst, one chunk at a time.

    A full chunk is held back until more data arrives, because only then do we
    know it is not the final one.  Memory use is two chunk buffers, whatever
    the size of the plaintext.
    """

    def __init__(self, key: bytes, dst: BinaryIO):
        self._aead = ChaCha20Poly1305(key)
        self._dst = dst
        self._buf = bytearray(CHUNK_SIZE)
        self._view = memoryview(self._buf)
        self._used = 0
        self._out = memoryview(bytearray(ENC_CHUNK_SIZE))
        self._counter = 0
        self._done = False

    @property
    def closed(self) -> bool:
        return self._done

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._done:
            raise ValueError("write to a closed age writer")
        mv = memoryview(data).cast("B")
        total = len(mv)
        while mv:
            if self._used == CHUNK_SIZE:
                # More data follows, so the buffered chunk is not the last one.
                self._seal(self._view, last=False)
                self._used = 0
            # Whole chunks with more data behind them go straight from the
            # caller's buffer, saving a copy.
            while self._used == 0 and len(mv) > CHUNK_SIZE:
                self._seal(mv[:CHUNK_SIZE], last=False)
                mv = mv[CHUNK_SIZE:]
            n = min(CHUNK_SIZE - self._used, len(mv))
            self._buf[self._used : self._used + n] = mv[:n]
            self._used += n
            mv = mv[n:]
        return total

    def flush(self) -> None:
        """Flush dst; buffered plaintext stays put until a chunk is full."""
        self._dst.flush()

    def close(self) -> None:
        """Seal the final chunk.  Does not close dst, which the caller owns."""
        if self._done:
            return
        self._seal(self._view[: self._used], last=True)
        self._used = 0
        self._done = True

    def abort(self) -> None:
        """Stop without a final chunk, so the partial output cannot pass as complete."""
        self._done = True

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _seal(self, plaintext: memoryview, last: bool) -> None:
        if self._counter > _MAX_COUNTER:
            self._done = True
            raise OverflowError("age STREAM chunk counter exhausted")
        out = self._out[: len(plaintext) + TAG_SIZE]
        try:
            self._aead.encrypt_into(_nonce(self._counter, last), plaintext, None, out)
            write_all(self._dst, out)
        except BaseException:
            # A failed write leaves a hole; refuse to go on and hide it.
            self._done = True
            raise
        self._counter += 1


def write_all(dst: BinaryIO, data: bytes | memoryview) -> None:
    """Write everything: a raw dst may accept only part of a write."""
    data = memoryview(data)
    n = dst.write(data)
    while n is not None and n < len(data):
        data = data[n:]
        n = dst.write(data)


class StreamReader(io.RawIOBase):
    """Decrypts the payload as it is read; a file object for zstandard & co.

    Plaintext of a chunk is handed out only after that chunk authenticated,
    and the end of the stream is reported only after a chunk flagged as final
    authenticated with nothing behind it.  Reads fill the caller's request
    across chunks, so a short result always means the end of the payload.
    """

    def __init__(self, key: bytes, src: BinaryIO):
        super().__init__()
        self._aead = ChaCha20Poly1305(key)
        self._src = src
        self._counter = 0
        self._ahead: bytes | None = None  # read on first use, not at construction
        self._plain = b""
        self._pos = 0
        self._eof = False
        self._error: PayloadError | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        out = memoryview(buf).cast("B")
        filled = 0
        while filled < len(out) and self._fill():
            n = min(len(out) - filled, len(self._plain) - self._pos)
            out[filled : filled + n] = memoryview(self._plain)[self._pos : self._pos + n]
            self._pos += n
            filled += n
        return filled

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self.readall()
        parts = []
        while n > 0 and self._fill():
            if self._pos == 0 and n >= len(self._plain):
                part = self._plain  # a whole chunk: hand it over without a copy
            else:
                part = self._plain[self._pos : self._pos + n]
            self._pos += len(part)
            n -= len(part)
            parts.append(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readall(self) -> bytes:
        parts = []
        while self._fill():
            parts.append(self._plain[self._pos :] if self._pos else self._plain)
            self._pos = len(self._plain)
        return b"".join(parts)

    def _fill(self) -> bool:
        """Make sure unread plaintext is available; False at the end of the payload."""
        self._checkClosed()
        if self._pos < len(self._plain):
            return True
        if self._error is not None:
            raise self._error
        while not self._eof and self._pos == len(self._plain):
            try:
                self._plain = self._next_chunk()
            except PayloadError as e:
                self._error = e
                raise
            self._pos = 0
        return self._pos < len(self._plain)

    def _next_chunk(self) -> bytes:
        if self._ahead is None:
            self._ahead = read_full(self._src, ENC_CHUNK_SIZE)
        chunk = self._ahead
        if not chunk:
            # age.md: decryption "MUST signal an error if the end of file is
            # reached without successfully decrypting a final chunk".
            raise TruncatedPayload("age payload ends before the final chunk")
        if self._counter > _MAX_COUNTER:
            raise PayloadError("age payload has too many chunks")
        # Only a full chunk can have another one behind it.
        self._ahead = read_full(self._src, ENC_CHUNK_SIZE) if len(chunk) == ENC_CHUNK_SIZE else b""
        last = not self._ahead
        try:
            plain = self._aead.decrypt(_nonce(self._counter, last), chunk, None)
        except InvalidTag:
            raise self._diagnose(chunk, last) from None
        if last:
            # age.md: the final chunk "MUST NOT be empty unless the whole
            # payload is empty".
            if not plain and self._counter > 0:
                raise PayloadError("age payload ends with an empty chunk")
            self._eof = True
        self._counter += 1
        return plain

    def _diagnose(self, chunk: bytes, last: bool) -> PayloadError:
        """Tell truncation and trailing garbage apart from plain corruption.

        Opening the chunk with the other flag only costs time on the error path.
        """
        try:
            self._aead.decrypt(_nonce(self._counter, not last), chunk, None)
        except InvalidTag:
            return PayloadError("age payload chunk failed to authenticate")
        if not last:
            return PayloadError("age payload has trailing data after the final chunk")
        if len(chunk) < ENC_CHUNK_SIZE:
            return PayloadError("age payload has a short chunk that is not the last")
        return TruncatedPayload("age payload ends before the final chunk")
