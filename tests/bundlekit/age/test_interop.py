"""Interop with the reference implementation: the `age` and `age-keygen` CLIs.

A bundle must stay readable with stock age when bundlekit is not at hand, so
these run in CI (CI=true makes a missing CLI a failure, not a skip).
"""

import io
import os
import shutil
import subprocess

import pytest

from bundlekit import age

CHUNK = age.CHUNK_SIZE
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        reason = f"the `{name}` CLI is not on PATH, so interop with the reference age is untested"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture
def age_cli():
    return tool("age")


@pytest.fixture
def keygen(tmp_path):
    """A key pair made by age-keygen: (identity string, recipient string, key file)."""
    key_file = tmp_path / "key.txt"
    subprocess.run([tool("age-keygen"), "-o", str(key_file)], check=True, capture_output=True)
    lines = key_file.read_text().splitlines()
    identity = next(line for line in lines if line.startswith("AGE-SECRET-KEY-1"))
    recipient = subprocess.run(
        [tool("age-keygen"), "-y", str(key_file)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return identity, recipient, key_file


def test_keys_match_age_keygen(keygen):
    identity, recipient, key_file = keygen
    secret = age.decode_identity(identity)
    assert age.encode_identity(secret) == identity
    assert age.encode_recipient(age.public_from_secret(secret)) == recipient
    assert f"# public key: {recipient}" in key_file.read_text()


@pytest.mark.parametrize("size", SIZES)
def test_we_decrypt_what_age_encrypts(age_cli, keygen, tmp_path, size):
    identity, recipient, _ = keygen
    plaintext = os.urandom(size)
    (tmp_path / "plain").write_bytes(plaintext)
    sealed = tmp_path / "sealed.age"
    subprocess.run(
        [age_cli, "-r", recipient, "-o", str(sealed), str(tmp_path / "plain")], check=True
    )
    with open(sealed, "rb") as f:
        assert age.decrypt([age.decode_identity(identity)], f).read() == plaintext


@pytest.mark.parametrize("size", SIZES)
def test_age_decrypts_what_we_encrypt(age_cli, keygen, tmp_path, size):
    _, recipient, key_file = keygen
    plaintext = os.urandom(size)
    sealed = tmp_path / "sealed.age"
    with open(sealed, "wb") as f, age.encrypt([age.decode_recipient(recipient)], f) as w:
        w.write(plaintext)
    out = subprocess.run(
        [age_cli, "-d", "-i", str(key_file), str(sealed)], check=True, capture_output=True
    ).stdout
    assert out == plaintext


def test_age_decrypts_for_each_of_several_recipients(age_cli, tmp_path):
    secrets = [os.urandom(32) for _ in range(3)]
    sealed = tmp_path / "sealed.age"
    with open(sealed, "wb") as f:
        with age.encrypt([age.public_from_secret(s) for s in secrets], f) as w:
            w.write(b"for all three")
    for i, secret in enumerate(secrets):
        key_file = tmp_path / f"key{i}.txt"
        key_file.write_text(age.encode_identity(secret) + "\n")
        out = subprocess.run(
            [age_cli, "-d", "-i", str(key_file), str(sealed)], check=True, capture_output=True
        ).stdout
        assert out == b"for all three"


def test_identity_file_with_comment_lines(age_cli, tmp_path):
    # bundlekit keeps its Ed25519 signing secret in a '#' line of the same
    # key file; age must still accept the file as an identity file.
    secret = os.urandom(32)
    key_file = tmp_path / "site-a.key"
    key_file.write_text(
        "# bundlekit identity for site-a\n"
        f"# public key: {age.encode_recipient(age.public_from_secret(secret))}\n"
        "# bundlekit-ed25519-secret: 3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
        "#\n"
        f"{age.encode_identity(secret)}\n"
    )
    sealed = tmp_path / "sealed.age"
    with open(sealed, "wb") as f, age.encrypt([age.public_from_secret(secret)], f) as w:
        w.write(b"signed and sealed")
    out = subprocess.run(
        [age_cli, "-d", "-i", str(key_file), str(sealed)], check=True, capture_output=True
    ).stdout
    assert out == b"signed and sealed"


def test_age_also_refuses_our_interrupted_output(age_cli, keygen, tmp_path):
    # Aborting the writer leaves no final chunk; the reference reader must
    # agree with ours that the file is incomplete.
    identity, recipient, key_file = keygen
    dst = io.BytesIO()
    w = age.encrypt([age.decode_recipient(recipient)], dst)
    w.write(os.urandom(2 * CHUNK))
    w.abort()
    sealed = tmp_path / "partial.age"
    sealed.write_bytes(dst.getvalue())
    result = subprocess.run([age_cli, "-d", "-i", str(key_file), str(sealed)], capture_output=True)
    assert result.returncode != 0
    with open(sealed, "rb") as f, pytest.raises(age.TruncatedPayload):
        age.decrypt([age.decode_identity(identity)], f).read()
