"""Bundle and key file names are generated, safe on any stick, and recognisable."""

from __future__ import annotations

import pytest

from bundlekit.naming import bundle_name, is_bundle_name, parse_bundle_name, safe_site

DIGEST = bytes.fromhex("ab" * 32)


@pytest.mark.parametrize(
    ("site", "slug"),
    [
        ("Site A (Kisumu)", "site-a-kisumu"),
        ("São Tomé", "sao-tome"),
        ("../../etc/passwd", "etc-passwd"),
        ("CON", "site-con"),
        ("lpt1", "site-lpt1"),
        ("trailing. ", "trailing"),
        ("北京", "site"),
        ("", "site"),
        ("x" * 100, "x" * 32),
    ],
)
def test_site_names_are_sanitised(site, slug):
    assert safe_site(site) == slug


def test_bundle_names_carry_site_sequence_and_digest():
    name = bundle_name("Site A", 42, DIGEST)
    assert name == "site-a-00000042-abababab.bundle"
    assert is_bundle_name(name)
    assert parse_bundle_name(name) == ("site-a", 42, "abababab")


@pytest.mark.parametrize(
    "name",
    [
        ".site-a-00000042-1234abcd.partial",
        ".site-a-00000042-abababab.bundle",
        "site-a-00000042-abababab.bundle.partial",
        "Site-A-00000042-abababab.bundle",
        "site-a-42-abababab.bundle",
        "site-a.key",
        "site-a-00000042-ABABABAB.bundle",
    ],
)
def test_other_files_are_not_bundle_names(name):
    assert not is_bundle_name(name)


def test_names_are_safe_on_fat32_and_case_insensitive_systems():
    for site in ["A/B\\C:D*E?F\"G<H>I|J", "Ünïcode\x00\x1f", " spaced out  "]:
        name = bundle_name(site, 1, DIGEST)
        assert name == name.lower()
        assert not set(name) & set('/\\:*?"<>| \x00')
        assert not name.endswith((".", " "))
        assert len(name) < 64
