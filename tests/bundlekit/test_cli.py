"""The `bundle` command as a person or a script uses it: subprocesses, real files.

Every failure must be one line naming the file, a non-zero exit, and no traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RECORDS = [
    {
        "id": {"$uuid": "6f1c1b9e-3f0e-4c47-9d6e-0a4f1f6d2b11"},
        "model": "lab.specimen",
        "volume": {"$decimal": "4.50"},
        "drawn": {"$datetime": "2026-11-02T09:15:00.123456+02:00"},
    },
    {
        "id": {"$uuid": "0c7e0e55-5a8e-4e4c-a0a8-7c5b8f0b9a01"},
        "model": "crf.visit",
        "note": "héllo",
        "blob": {"$bytes": "AAEC"},
    },
]


def bundle(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "BUNDLEKIT_NO_PROGRESS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "bundlekit", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def assert_one_clean_line(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    d = tmp_path / "keys"
    for name in ("site-a", "central", "stranger"):
        assert bundle("keygen", name, "--dir", str(d)).returncode == 0
    return d


@pytest.fixture
def sealed(keys: Path, tmp_path: Path) -> Path:
    usb = tmp_path / "usb"
    usb.mkdir()
    stdin = "".join(json.dumps(r) + "\n" for r in RECORDS)
    result = bundle(
        "seal",
        "-i",
        str(keys / "site-a.key"),
        "--to",
        str(keys / "central.pub"),
        "--out",
        str(usb),
        stdin=stdin,
    )
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.parent == usb and path.exists()
    return path


def test_keygen_writes_a_key_pair_and_refuses_to_overwrite(tmp_path: Path):
    first = bundle("keygen", "site-a", "--dir", str(tmp_path), "--json")
    assert first.returncode == 0, first.stderr
    info = json.loads(first.stdout)
    assert (tmp_path / "site-a.key").stat().st_mode & 0o777 == 0o600
    assert info["fingerprint"]
    again = bundle("keygen", "site-a", "--dir", str(tmp_path))
    assert_one_clean_line(again, "site-a")


def test_seal_verify_open_round_trip(keys: Path, sealed: Path):
    verified = bundle("verify", str(sealed), "--trust", str(keys / "site-a.pub"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK")

    opened = bundle("open", str(sealed), "-i", str(keys / "central.key"))
    assert opened.returncode == 0, opened.stderr
    assert [json.loads(line) for line in opened.stdout.splitlines()] == RECORDS


def test_verify_counts_transactions_and_file_chunks_apart(keys: Path, tmp_path: Path):
    """export and import count transactions; verify says so too, and how many chunk
    records of files (FORMAT.md §5.5) ride along, read from the manifest alone."""
    import base64
    import hashlib

    content = b"a photo of a label"
    chunk = {"$blob": {"$bytes": base64.b64encode(hashlib.sha256(content).digest()).decode()},
             "offset": 0, "size": len(content),
             "data": {"$bytes": base64.b64encode(content).decode()}}
    (tmp_path / "out").mkdir()
    lines = [json.dumps(chunk), *map(json.dumps, RECORDS), json.dumps({"note": "no kind"})]
    sealed = bundle("seal", "-i", str(keys / "site-a.key"), "--to", str(keys / "central.pub"),
                    "--out", str(tmp_path / "out"), stdin="\n".join(lines[:3]) + "\n")
    path = sealed.stdout.strip()
    result = bundle("verify", path)
    assert result.returncode == 0, result.stderr
    assert "seq 1, 2 transactions and 1 file chunk, signature valid" in result.stdout
    (info,) = json.loads(bundle("verify", path, "--json").stdout)
    assert (info["transactions"], info["file_chunks"]) == (2, 1)
    assert info["manifest"]["record_count"] == 3
    # Records without a kind only: the manifest cannot tell chunks from them.
    other = bundle("seal", "-i", str(keys / "site-a.key"), "--to", str(keys / "central.pub"),
                   "--out", str(tmp_path / "out"), stdin=lines[3] + "\n").stdout.strip()
    assert "seq 2, 1 record, signature valid" in bundle("verify", other).stdout
    (info,) = json.loads(bundle("verify", other, "--json").stdout)
    assert (info["transactions"], info["file_chunks"]) == (None, None)


def test_version():
    from importlib.metadata import version

    result = bundle("--version")
    assert result.returncode == 0 and result.stdout == f"bundlekit {version('bundlekit')}\n"


def test_second_seal_continues_the_chain(keys: Path, sealed: Path):
    result = bundle(
        "seal",
        "-i",
        str(keys / "site-a.key"),
        "--to",
        str(keys / "central.pub"),
        "--out",
        str(sealed.parent),
        "--json",
        stdin=json.dumps(RECORDS[0]) + "\n",
    )
    second = json.loads(result.stdout)[0]["manifest"]
    first = json.loads(bundle("inspect", str(sealed), "--json").stdout)["manifest"]
    assert second["seq"] == first["seq"] + 1


def test_verify_reports_each_file_and_fails_if_any_is_bad(keys: Path, sealed: Path):
    damaged = sealed.with_name("copy-" + sealed.name)
    data = bytearray(sealed.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))
    result = bundle("verify", str(sealed), str(damaged), "--json")
    assert result.returncode == 1
    report = {Path(r["file"]).name: r for r in json.loads(result.stdout)}
    assert report[sealed.name]["valid"] is True
    assert report[damaged.name]["valid"] is False


def test_unknown_sender_is_rejected_when_trust_is_given(keys: Path, sealed: Path):
    result = bundle("verify", str(sealed), "--trust", str(keys / "stranger.pub"))
    assert result.returncode == 1
    assert "INVALID" in result.stdout and "Traceback" not in result.stderr


def test_open_with_the_wrong_key_is_one_clear_line(keys: Path, sealed: Path):
    result = bundle("open", str(sealed), "-i", str(keys / "stranger.key"))
    assert_one_clean_line(result, sealed.name)
    assert result.stdout == ""


def test_a_pub_file_where_a_key_is_expected(keys: Path, sealed: Path):
    result = bundle("open", str(sealed), "-i", str(keys / "central.pub"))
    assert_one_clean_line(result, "central.pub")


@pytest.mark.parametrize("content", [b"", b"hello, not a bundle\n", os.urandom(300)])
def test_non_bundles_are_one_clear_line(tmp_path: Path, keys: Path, content: bytes):
    path = tmp_path / "x.bundle"
    path.write_bytes(content)
    for args in (("inspect", str(path)), ("open", str(path), "-i", str(keys / "central.key"))):
        assert_one_clean_line(bundle(*args), "x.bundle")
    result = bundle("verify", str(path))
    assert result.returncode == 1 and "x.bundle" in result.stdout


def test_missing_file_and_empty_folder(tmp_path: Path):
    assert_one_clean_line(bundle("inspect", str(tmp_path / "nope.bundle")), "nope.bundle")
    assert_one_clean_line(bundle("verify", str(tmp_path)), str(tmp_path))


def test_payload_is_a_standard_age_file(keys: Path, sealed: Path, tmp_path: Path):
    if not shutil.which("age") or not shutil.which("zstd"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs the age and zstd command-line tools")
        pytest.skip("age or zstd command-line tool not installed")
    payload = subprocess.run(
        [sys.executable, "-m", "bundlekit", "payload", str(sealed)], capture_output=True, check=True
    ).stdout
    plain = subprocess.run(
        ["age", "-d", "-i", str(keys / "central.key")],
        input=payload,
        capture_output=True,
        check=True,
    ).stdout
    raw = subprocess.run(["zstd", "-d", "-c"], input=plain, capture_output=True, check=True).stdout
    import msgpack

    records = list(msgpack.Unpacker(__import__("io").BytesIO(raw), raw=False, strict_map_key=False))
    assert [r["note"] if "note" in r else r["model"] for r in records] == ["lab.specimen", "héllo"]


def test_verify_refuses_a_revoked_sender(keys: Path, sealed: Path, tmp_path: Path):
    revocations = tmp_path / "revoked.txt"
    made = bundle(
        "keys",
        "revoke",
        str(keys / "site-a.pub"),
        "--list",
        str(revocations),
        "--reason",
        "laptop stolen",
    )
    assert made.returncode == 0, made.stderr
    result = bundle("verify", str(sealed), "--revoked", str(revocations), "--json")
    assert result.returncode == 1
    (report,) = json.loads(result.stdout)
    assert report["error"] == "revoked-key"
    assert bundle("verify", str(sealed), "--revoked", str(keys / "stranger.pub")).returncode == 0
