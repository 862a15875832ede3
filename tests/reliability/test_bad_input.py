"""Bad input wherever a person types or drops something: one clear line, a
non-zero exit, no traceback, nothing changed (the CLI in a subprocess, as a
person runs it, against a Django project whose settings live in tmp_path)."""

from __future__ import annotations

import hashlib
import sqlite3
import textwrap
from pathlib import Path

import pytest

from bundlekit.keys import Identity, write_keypair
from bundlekit.writer import ChainLink, seal
from tests.reliability.helpers import SETTINGS_HEAD, bundle_cli, one_clean_line

SETTINGS = SETTINGS_HEAD + """
BASE_DIR = HERE
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.path.join(BASE_DIR, "server.sqlite3")}}
BUNDLEKIT = %(bundlekit)s
"""


def db_digest(path: Path) -> str:
    con = sqlite3.connect(path)
    try:
        return hashlib.sha256("\n".join(con.iterdump()).encode()).hexdigest()
    finally:
        con.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    d = tmp_path_factory.mktemp("project")
    keys = d / "keys"
    keys.mkdir()
    central, site, stranger, other_server = (
        Identity.generate(n) for n in ("central", "site-a", "stranger", "other-server"))
    for name, ident in (("central", central), ("site-a", site), ("stranger", stranger),
                        ("other-server", other_server)):
        write_keypair(ident, keys, name)
    good = {"SITE": "central", "IDENTITY": "keys/central.key", "TRUSTED": ["keys/site-a.pub"],
            "RECEIPTS_OUT": "receipts"}
    (d / "good_settings.py").write_text(textwrap.dedent(SETTINGS) % {"bundlekit": repr(good)})
    missing = {k: v for k, v in good.items() if k != "IDENTITY"}
    (d / "missing_settings.py").write_text(textwrap.dedent(SETTINGS) % {"bundlekit": repr(missing)})
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "django", "migrate", "--settings", "good_settings", "-v", "0"],
                   cwd=d, check=True, env={"PYTHONPATH": f"{d}:{Path(__file__).resolve().parents[2]}",
                                           "PATH": "/usr/bin:/bin"})
    sticks = d / "sticks"
    sticks.mkdir()
    rec = [{"id": 1, "model": "lab.x", "v": "a"}]
    (foreign,) = seal(rec, identity=stranger, recipients=[other_server.public], out_dir=sticks,
                      after=ChainLink(0, None))
    junk_free = d / "other-stick"
    junk_free.mkdir()
    (not_for_us,) = seal(rec, identity=site, recipients=[other_server.public],
                         out_dir=junk_free, after=ChainLink(0, None))
    (empty := sticks / "site-a-00000009-00000000.bundle").write_bytes(b"")
    junk = d / "photos"
    junk.mkdir()
    (junk / "IMG_0001.JPG").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    (junk / "notes.txt").write_text("not a bundle")
    (junk / "fake.bundle").write_text("not a bundle either")
    (d / "plain-age.key").write_text("# created: 2024\nAGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ\n")
    return {"dir": d, "keys": keys, "foreign": foreign.path, "not_for_us": not_for_us.path,
            "empty": empty, "junk": junk, "db": d / "server.sqlite3"}


CASES = {
    # (argv, text the one line must contain)
    "pub-for-key": (["seal", "--identity", "keys/central.pub", "--to", "keys/central.pub",
                     "--out", "sticks"], "public key (.pub)"),
    "key-for-pub": (["verify", "sticks", "--trust", "keys/site-a.key"], "secret key (.key)"),
    "plain-age-key": (["open", "{empty}", "--identity", "plain-age.key"], "plain age key"),
    "photo-for-key": (["seal", "--identity", "photos/IMG_0001.JPG", "--to", "keys/central.pub",
                       "--out", "sticks"], "IMG_0001.JPG"),
    "folder-of-non-bundles": (["verify", "photos/IMG_0001.JPG", "photos/notes.txt"], ""),
    "no-bundles-in-folder": (["verify", "photos"], "no bundle files found"),
    "revoke-a-secret-key": (["keys", "revoke", "keys/site-a.key", "--reason", "x", "--list",
                             "r.list"], "secret key (.key)"),
    "settings-missing-key": (["import", "sticks", "--settings", "missing_settings"],
                             "BUNDLEKIT['IDENTITY'] is required"),
    "no-such-settings": (["import", "sticks", "--settings", "nonexistent_settings"],
                         "nonexistent_settings"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_one_clear_line_nothing_changed(project, case, record):
    argv, needle = CASES[case]
    argv = [a.format(empty=project["empty"]) for a in argv]
    before = db_digest(project["db"])
    files_before = sorted(p.relative_to(project["dir"]) for p in project["dir"].rglob("*")
                          if "__pycache__" not in p.parts)
    r = bundle_cli(*argv, cwd=project["dir"])
    if case == "folder-of-non-bundles":
        # verify reports each file on stdout and fails
        assert r.returncode == 1 and "Traceback" not in r.stderr + r.stdout
        lines = r.stdout.splitlines()
        assert len(lines) == 2 and all(line.startswith("INVALID") for line in lines), r.stdout
        assert "not a bundle" in r.stdout
    else:
        line = one_clean_line(r)
        assert needle in line, line
    assert db_digest(project["db"]) == before
    files_after = sorted(p.relative_to(project["dir"]) for p in project["dir"].rglob("*")
                         if "__pycache__" not in p.parts)
    assert files_after == files_before
    record("bad-input", trials=1, rejected=1, accepted=0, case=case)


@pytest.mark.slow
@pytest.mark.parametrize("what", ["foreign", "not_for_us", "empty", "junk"])
def test_import_refuses_and_changes_nothing(project, what, record):
    """A stick from another project, a bundle for another server, a 0-byte file, a
    folder of photos: `bundle import` says why for each, exits non-zero, writes nothing."""
    before = db_digest(project["db"])
    target = project[what]
    r = bundle_cli("import", str(target), "--settings", "good_settings", cwd=project["dir"])
    out = r.stdout + r.stderr
    assert "Traceback" not in out
    assert r.returncode != 0, out
    assert len([line for line in out.splitlines() if line.strip()]) == 1, out
    assert out.startswith("REJECTED"), out
    assert db_digest(project["db"]) == before
    if what == "junk":
        assert "fake.bundle" in out or "no bundle" in out.lower(), out
    else:
        assert Path(target).name in out, out
    record("bad-input", trials=1, rejected=1, accepted=0, case=f"import-{what}")
