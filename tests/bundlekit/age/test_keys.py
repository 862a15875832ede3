"""Key strings: Bech32 as age writes it, checked against the spec's vector."""

import pytest

from bundlekit import age
from bundlekit.age import bech32

# age.md, "The X25519 recipient type": the example identity and its recipient.
SPEC_IDENTITY = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
SPEC_RECIPIENT = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"


def test_spec_vector():
    secret = age.decode_identity(SPEC_IDENTITY)
    assert secret == b"\x42" * 32
    assert age.encode_identity(secret) == SPEC_IDENTITY
    pub = age.public_from_secret(secret)
    assert age.encode_recipient(pub) == SPEC_RECIPIENT
    assert age.decode_recipient(SPEC_RECIPIENT) == pub


def test_identity_is_upper_case_and_recipient_lower_case():
    secret = bytes(range(32))
    assert age.encode_identity(secret).startswith("AGE-SECRET-KEY-1")
    assert age.encode_identity(secret).isupper()
    assert age.encode_recipient(age.public_from_secret(secret)).startswith("age1")


@pytest.mark.parametrize(
    "bad",
    [
        SPEC_IDENTITY.lower(),  # the HRP must be the upper-case AGE-SECRET-KEY-
        SPEC_IDENTITY[:-1] + "Y",  # checksum
        SPEC_IDENTITY[:20] + SPEC_IDENTITY[20:].lower(),  # mixed case
        SPEC_RECIPIENT,  # a recipient is not an identity
        SPEC_IDENTITY.replace("1", "", 1)[:-6],  # separator gone
        "",
    ],
)
def test_decode_identity_rejects(bad):
    with pytest.raises(ValueError):
        age.decode_identity(bad)


@pytest.mark.parametrize(
    "bad",
    [
        SPEC_RECIPIENT.upper(),  # age writes and accepts only lower case
        SPEC_RECIPIENT[:-1] + "q",  # checksum
        SPEC_RECIPIENT.replace("q", "b", 1),  # 'b' is not in the Bech32 alphabet
        bech32.encode("age", b"\x01" * 31),  # wrong key length
        bech32.encode("age1pq", b"\x01" * 32),  # another recipient type
        SPEC_IDENTITY,
    ],
)
def test_decode_recipient_rejects(bad):
    with pytest.raises(ValueError):
        age.decode_recipient(bad)


def test_bip173_valid_strings_decode():
    # Test vectors from BIP173 (Bech32, not Bech32m).
    for s in ["A12UEL5L", "a12uel5l", "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw"]:
        hrp, data = bech32.decode(s)
        assert bech32.encode(hrp, data) == s


def test_non_zero_padding_is_rejected():
    # The 32-byte key leaves 4 padding bits; setting one must not decode.
    good = bech32.encode("age", b"\x00" * 32)
    values = [bech32.CHARSET.index(c) for c in good[4:-6]]
    values[-1] |= 1
    body = "".join(bech32.CHARSET[v] for v in values)
    forged = _with_checksum("age", body)
    with pytest.raises(ValueError, match="padding"):
        bech32.decode(forged)


def _with_checksum(hrp, data_part):
    # Recompute a valid checksum so only the padding is wrong.
    values = [bech32.CHARSET.index(c) for c in data_part]
    mod = bech32._polymod(bech32._hrp_expand(hrp) + values + [0] * 6) ^ 1
    checksum = "".join(bech32.CHARSET[(mod >> 5 * (5 - i)) & 31] for i in range(6))
    return hrp + "1" + data_part + checksum


@pytest.mark.parametrize("length", [0, 31, 33])
def test_wrong_key_sizes_are_programming_errors(length):
    with pytest.raises(ValueError):
        age.encode_recipient(b"\x01" * length)
    with pytest.raises(ValueError):
        age.encode_identity(b"\x01" * length)
    with pytest.raises(ValueError):
        age.public_from_secret(b"\x01" * length)
