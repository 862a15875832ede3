"""Every byte of a bundle is bound: any flipped byte and any truncation is caught."""

from __future__ import annotations

import pytest

from bundlekit.errors import BundleError, NotABundle, TruncatedBundle
from bundlekit.reader import open_bundle, verify


def _data(sealed) -> bytes:
    with open(sealed.path, "rb") as f:
        return f.read()


def test_small_bundle_is_small(small_bundle):
    assert 500 < len(_data(small_bundle)) < 1500  # keeps the exhaustive tests fast


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_every_single_byte_flip_is_detected_by_verify(small_bundle, tmp_path, mask):
    data = _data(small_bundle)
    p = tmp_path / "flipped.bundle"
    undetected = []
    for offset in range(len(data)):
        p.write_bytes(data[:offset] + bytes([data[offset] ^ mask]) + data[offset + 1 :])
        try:
            verify(p)
        except BundleError:
            continue
        undetected.append(offset)
    assert undetected == []


def test_every_single_byte_flip_is_detected_by_open(small_bundle, community, tmp_path):
    data = _data(small_bundle)
    p = tmp_path / "flipped.bundle"
    for offset in range(0, len(data), 7):
        p.write_bytes(data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :])
        with pytest.raises(BundleError):
            with open_bundle(p, [community]) as bundle:
                list(bundle)


def test_every_truncation_is_detected(small_bundle, community, tmp_path):
    data = _data(small_bundle)
    p = tmp_path / "short.bundle"
    for length in range(len(data)):
        p.write_bytes(data[:length])
        with pytest.raises(BundleError) as e:
            verify(p)
        if length == 0:
            assert isinstance(e.value, NotABundle)
        else:
            assert isinstance(e.value, TruncatedBundle), (length, e.value)
        if length % 13 == 0:
            with pytest.raises(BundleError):
                with open_bundle(p, [community]) as bundle:
                    list(bundle)


def test_appended_bytes_are_detected(small_bundle, tmp_path):
    p = tmp_path / "longer.bundle"
    p.write_bytes(_data(small_bundle) + b"\n")
    with pytest.raises(BundleError):
        verify(p)
