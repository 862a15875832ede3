"""Site keys: generation, fingerprints, and the .key/.pub files people carry around."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from bundlekit import age
from bundlekit.errors import KeyFileError
from bundlekit.keys import Identity, generate_keypair, load_identity, load_public_key, write_keypair


def require_tool(name: str) -> str:
    """The path of a command-line tool; skip without it, but fail in CI where it must exist."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI (interoperability test)")
        pytest.skip(f"{name} is not installed")
    return path


def test_fingerprint_is_stable_and_ignores_the_site_label():
    ident = Identity.generate("site-a")
    renamed = Identity("another label", ident.x25519_secret, ident.ed25519_secret)
    assert ident.public.fingerprint == renamed.public.fingerprint
    assert len(ident.public.fingerprint.replace("-", "")) == 32
    assert ident.public.fingerprint != Identity.generate("site-a").public.fingerprint


def test_repr_never_shows_secrets():
    ident = Identity.generate("site-a")
    assert ident.x25519_secret.hex() not in repr(ident)
    assert ident.age_identity not in repr(ident)


def test_signatures_verify_with_the_public_key_only():
    ident = Identity.generate("site-a")
    sig = ident.sign(b"hello")
    assert ident.public.verify(sig, b"hello")
    assert not ident.public.verify(sig, b"hellO")


def test_key_files_round_trip(tmp_path):
    ident, key_path, pub_path = generate_keypair("São Tomé field team", tmp_path)
    assert os.path.basename(key_path) == "sao-tome-field-team.key"
    assert load_identity(key_path) == ident
    pub = load_public_key(pub_path)
    assert pub == ident.public and pub.site == "São Tomé field team"


def test_key_file_is_private_and_pub_file_is_shareable(tmp_path):
    key_path, pub_path = write_keypair(Identity.generate("site-a"), tmp_path)
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    text = open(pub_path).read()
    assert "AGE-SECRET-KEY" not in text and "SIGNING-KEY" not in text
    assert "bundlekit-public-key: v1" in text


def test_refuses_to_overwrite_either_file(tmp_path):
    ident = Identity.generate("site-a")
    key_path, pub_path = write_keypair(ident, tmp_path)
    before = open(key_path).read()
    with pytest.raises(KeyFileError, match="already exists"):
        write_keypair(Identity.generate("site-a"), tmp_path)
    assert open(key_path).read() == before
    os.unlink(key_path)
    with pytest.raises(KeyFileError, match="already exists"):  # only the .pub is left
        write_keypair(Identity.generate("site-a"), tmp_path)
    assert not os.path.exists(key_path)


def test_the_wrong_kind_of_file_is_named_in_the_error(tmp_path):
    key_path, pub_path = write_keypair(Identity.generate("site-a"), tmp_path)
    with pytest.raises(KeyFileError, match=r"is a public key \(\.pub\)") as e:
        load_identity(pub_path)
    assert e.value.path == pub_path
    with pytest.raises(KeyFileError, match=r"is a secret key \(\.key\)"):
        load_public_key(key_path)


@pytest.mark.parametrize(
    "content",
    [b"", b"\x89PNG\r\n\x1a\n\x00\x00", b"hello\n", b"# bundlekit-key: v1\n", b"\xff" * 100],
)
def test_garbage_is_a_key_file_error(tmp_path, content):
    p = tmp_path / "x.key"
    p.write_bytes(content)
    with pytest.raises(KeyFileError):
        load_identity(p)
    with pytest.raises(KeyFileError):
        load_public_key(p)


def test_missing_file_is_a_key_file_error(tmp_path):
    with pytest.raises(KeyFileError, match="does not exist"):
        load_identity(tmp_path / "nope.key")


def test_edited_key_file_is_caught(tmp_path):
    key_path, _ = write_keypair(Identity.generate("site-a"), tmp_path)
    other = Identity.generate("site-b")
    lines = open(key_path).read().splitlines()
    lines[-1] = other.age_identity  # the age key no longer matches the recorded fingerprint
    open(key_path, "w").write("\n".join(lines) + "\n")
    with pytest.raises(KeyFileError, match="inconsistent"):
        load_identity(key_path)


def test_age_cli_accepts_our_key_file_as_is(tmp_path):
    age_bin = require_tool("age")
    ident = Identity.generate("site-a")
    key_path, _ = write_keypair(ident, tmp_path)
    with open(tmp_path / "msg.age", "wb") as f:
        w = age.encrypt([ident.public.x25519], f)
        w.write(b"readable with standard tools")
        w.close()
    out = subprocess.run(
        [age_bin, "-d", "-i", key_path, str(tmp_path / "msg.age")], capture_output=True, check=True
    )
    assert out.stdout == b"readable with standard tools"
