"""Identity binding: the site a bundle or receipt names must be the site its
signing key is trusted as (issue 10, docs/SECURITY.md "Identity binding").

The attack: laptop-a's own key file with its ``site`` line edited to
``laptop-b``.  The keys still match each other, so the file loads and seals
bundles that name laptop-b; only the trusted ``.pub`` says whose key it is.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from bundlekit.errors import (
    ReceiptIssuerMismatch,
    ReceiptUntrusted,
    SiteNameMismatch,
    UnknownSender,
)
from bundlekit.keys import generate_keypair, load_identity, load_public_key
from bundlekit.reader import open_bundle, verify
from bundlekit.receipt import ReceiptEntry, read_receipt, write_receipt
from bundlekit.writer import ChainLink, seal
from tests.bundlekit.test_cli import assert_one_clean_line, bundle

pytestmark = pytest.mark.attack


def forge_site_line(key_file: Path, site: str) -> Path:
    """A copy of ``key_file`` whose site line names ``site`` (the keys unchanged)."""
    lines = key_file.read_text().splitlines(keepends=True)
    edited = [f"# bundlekit-site: {site}\n" if ln.startswith("# bundlekit-site:") else ln
              for ln in lines]
    assert edited != lines
    forged = key_file.with_name("forged.key")
    forged.write_text("".join(edited))
    forged.chmod(0o600)
    return forged


@pytest.fixture
def keys(tmp_path):
    d = tmp_path / "keys"
    d.mkdir()
    for name in ("laptop-a", "laptop-b", "central"):
        generate_keypair(name, d)
    return d


@pytest.fixture
def forged_bundle(keys, tmp_path):
    """laptop-a's keys under laptop-b's name seal one bundle for central."""
    forger = load_identity(forge_site_line(keys / "laptop-a.key", "laptop-b"))
    assert forger.site == "laptop-b"
    assert forger.public.same_key(load_public_key(keys / "laptop-a.pub"))
    out = tmp_path / "usb"
    out.mkdir()
    (sealed,) = seal([{"id": 1, "model": "m", "v": "x"}], identity=forger,
                     recipients=[load_public_key(keys / "central.pub")], out_dir=out,
                     after=ChainLink(0, None))
    return sealed.path


def test_verify_refuses_a_site_name_its_trusted_key_does_not_carry(keys, forged_bundle):
    real_a, real_b = load_public_key(keys / "laptop-a.pub"), load_public_key(keys / "laptop-b.pub")
    with pytest.raises(SiteNameMismatch) as err:
        verify(forged_bundle, trusted=[real_a])
    assert err.value.code == "site-name-mismatch"
    assert str(err.value).startswith(str(forged_bundle) + ": ")
    assert "'laptop-b'" in err.value.reason and "'laptop-a'" in err.value.reason
    # laptop-b's real key did not sign it: an unknown sender, as before.
    with pytest.raises(UnknownSender) as err:
        verify(forged_bundle, trusted=[real_b])
    assert not isinstance(err.value, SiteNameMismatch)
    # Trusting both does not help the forger either.
    with pytest.raises(SiteNameMismatch):
        verify(forged_bundle, trusted=[real_b, real_a])


def test_open_bundle_refuses_before_decrypting(keys, forged_bundle):
    with pytest.raises(SiteNameMismatch):
        with open_bundle(forged_bundle, [load_identity(keys / "central.key")],
                         trusted=[load_public_key(keys / "laptop-a.pub")]):
            pytest.fail("opened a bundle whose site name its key does not carry")


def test_the_honest_bundle_of_the_same_key_still_verifies(keys, tmp_path):
    out = tmp_path / "honest"
    out.mkdir()
    (sealed,) = seal([{"id": 1}], identity=load_identity(keys / "laptop-a.key"),
                     recipients=[load_public_key(keys / "central.pub")], out_dir=out,
                     after=ChainLink(0, None))
    assert verify(sealed.path, trusted=[load_public_key(keys / "laptop-a.pub")]).sender.site == "laptop-a"


def test_a_receipt_issuer_must_be_named_as_its_key_is_trusted(keys, tmp_path):
    real_server = load_public_key(keys / "central.pub")
    forged_server = load_identity(forge_site_line(keys / "central.key", "other-server"))
    site = load_identity(keys / "laptop-a.key")
    path = write_receipt(tmp_path, issuer=forged_server, subject=site.public,
                         entries=[ReceiptEntry(uuid.uuid4(), 1, b"\0" * 32, "held")])
    with pytest.raises(ReceiptIssuerMismatch) as err:
        read_receipt(path, trusted_issuers=[real_server], me=site)
    assert err.value.code == "receipt-issuer-mismatch"
    assert isinstance(err.value, ReceiptUntrusted)  # refused like any untrusted issuer
    assert str(err.value).startswith(str(path) + ": ")


def test_cli_verify_trust_refuses_in_one_line(keys, forged_bundle):
    result = bundle("verify", str(forged_bundle), "--trust", str(keys / "laptop-a.pub"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"INVALID {forged_bundle}: ") and "trusted as site 'laptop-a'" in line
    as_json = bundle("verify", str(forged_bundle), "--trust", str(keys / "laptop-a.pub"), "--json")
    assert json.loads(as_json.stdout)[0]["error"] == "site-name-mismatch"


def test_cli_verify_without_trust_says_the_sender_was_not_checked(keys, forged_bundle):
    result = bundle("verify", str(forged_bundle))
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert "signature valid" in line and "NOT checked" in line
    assert "signed by" not in line  # no wording that reads as "laptop-b signed this"
    assert json.loads(bundle("verify", str(forged_bundle), "--json").stdout)[0]["sender_checked"] is False
    honest = bundle("verify", str(forged_bundle), "--trust", str(keys / "laptop-b.pub"))
    assert honest.returncode == 1


def test_cli_open_refuses_in_one_line(keys, forged_bundle):
    result = bundle("open", str(forged_bundle), "-i", str(keys / "central.key"),
                    "--trust", str(keys / "laptop-a.pub"))
    assert_one_clean_line(result, str(forged_bundle), "trusted as site 'laptop-a'")


def test_a_rotation_cannot_rename_a_trusted_key(keys, tmp_path):
    """The edited key file rotates to a fresh key "for laptop-b": accepting it would
    make the server trust laptop-a's successor key as laptop-b."""
    from bundlekit.rotation import accept_rotation, rotate

    forged = forge_site_line(keys / "laptop-a.key", "laptop-b")
    _, _, _, statement = rotate(forged, directory=tmp_path / "new")
    trusted = [load_public_key(keys / "laptop-a.pub"), load_public_key(keys / "laptop-b.pub")]
    accepted = tmp_path / "accepted"
    accepted.mkdir()
    with pytest.raises(SiteNameMismatch) as err:
        accept_rotation(statement, trusted, accepted)
    assert str(err.value).startswith(f"{statement}: ") and "'laptop-a'" in err.value.reason
    assert not list(accepted.iterdir())
    # The honest rotation of the same key still goes through.
    _, _, _, honest = rotate(keys / "laptop-a.key", directory=tmp_path / "honest")
    rot, pub = accept_rotation(honest, trusted, accepted)
    assert load_public_key(pub).site == "laptop-a"
