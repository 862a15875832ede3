"""Bech32 (BIP173) for age key strings.

age uses BIP173 Bech32 (not Bech32m) "without length limits on the data part"
(age.md, "Conventions used in this document").  Strings are all upper or all
lower case; the checksum is always computed over the lower-case form.  The
returned HRP keeps the case of the input, so callers can insist on
``AGE-SECRET-KEY-`` being upper case, as the Go implementation does.
"""

from __future__ import annotations

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_INDEX = {c: i for i, c in enumerate(CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_CHECKSUM_LEN = 6
SEPARATOR = "1"


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GENERATOR[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    h = hrp.lower().encode("ascii")
    return [c >> 5 for c in h] + [0] + [c & 31 for c in h]


def _convert_bits(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        if value >> frombits:
            raise ValueError("bech32: invalid data range")
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits:
        raise ValueError("bech32: illegal zero padding")
    elif (acc << (tobits - bits)) & maxv:
        raise ValueError("bech32: non-zero padding")
    return out


def _check_hrp(hrp: str) -> None:
    if not hrp:
        raise ValueError("bech32: empty human-readable part")
    if any(not 33 <= ord(c) <= 126 for c in hrp):
        raise ValueError("bech32: invalid character in human-readable part")


def encode(hrp: str, data: bytes) -> str:
    """Encode; an upper-case HRP gives an upper-case string (age secret keys)."""
    _check_hrp(hrp)
    if hrp.upper() != hrp and hrp.lower() != hrp:
        raise ValueError("bech32: mixed-case human-readable part")
    lower = hrp.lower()
    values = _convert_bits(data, 8, 5, pad=True)
    mod = _polymod(_hrp_expand(lower) + values + [0] * _CHECKSUM_LEN) ^ 1
    checksum = [(mod >> 5 * (5 - i)) & 31 for i in range(_CHECKSUM_LEN)]
    s = lower + SEPARATOR + "".join(CHARSET[v] for v in values + checksum)
    return s if hrp == lower else s.upper()


def decode(s: str) -> tuple[str, bytes]:
    """Return (hrp as written, data); ValueError on anything malformed."""
    if not isinstance(s, str):
        raise TypeError("bech32: expected str")
    if s.lower() != s and s.upper() != s:
        raise ValueError("bech32: mixed case")
    pos = s.rfind(SEPARATOR)
    if pos < 1 or pos + 1 + _CHECKSUM_LEN > len(s):
        raise ValueError("bech32: separator at invalid position")
    hrp = s[:pos]
    _check_hrp(hrp)
    try:
        values = [_CHARSET_INDEX[c] for c in s[pos + 1 :].lower()]
    except KeyError:
        raise ValueError("bech32: invalid character in data part") from None
    if _polymod(_hrp_expand(hrp) + values) != 1:
        raise ValueError("bech32: invalid checksum")
    return hrp, bytes(_convert_bits(values[:-_CHECKSUM_LEN], 5, 8, pad=False))
