"""Key rotation and revocation exist and work: the commands of docs/SECURITY.md.

``bundle keys rotate`` makes a new key for the same site and a statement signed by
both keys; ``bundle keys accept`` checks it against the trusted old key and writes
the new ``.pub``; ``bundle keys revoke`` adds a key to a revocation list that
verify and import then honour (``RevokedKey``), while data already applied stays.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bundlekit.errors import KeyFileError, RevokedKey, UnknownSender
from bundlekit.keys import Identity, load_identity, load_public_key, write_keypair
from bundlekit.reader import verify
from bundlekit.rotation import (
    RevocationListError,
    RotationError,
    accept_rotation,
    load_revoked,
    parse_rotation,
    read_revocations,
    read_rotation,
    revoke,
    rotate,
    rotation_text,
)
from bundlekit.writer import ChainLink, seal
from tests.reliability.helpers import bundle_cli, one_clean_line, row_counts


def _seal(identity, to, out: Path, n=3):
    recs = [{"id": i, "model": "lab.x", "v": f"value-{i}"} for i in range(n)]
    return seal(recs, identity=identity, recipients=[to], out_dir=out, after=ChainLink(0, None))


@pytest.fixture
def site(tmp_path):
    d = tmp_path / "site"
    d.mkdir()
    ident = Identity.generate("Site A (Kisumu)")
    key, pub = write_keypair(ident, d, "site-a")
    return ident, Path(key), Path(pub)


def test_rotate_accept_and_revoke_through_the_cli(tmp_path, site, record):
    old, old_key, old_pub = site
    central = Identity.generate("central")
    r = bundle_cli("keys", "rotate", "--identity", str(old_key), "--json")
    assert r.returncode == 0, r.stderr
    import json

    info = json.loads(r.stdout)
    new_key, new_pub, statement = Path(info["key"]), Path(info["pub"]), Path(info["rotation"])
    assert stat.S_IMODE(os.stat(new_key).st_mode) == 0o600
    new = load_identity(new_key)
    assert new.site == old.site and not new.public.same_key(old.public)
    assert load_public_key(new_pub).same_key(new.public)

    # The server trusts only the old key; accepting the statement writes the new .pub.
    server_keys = tmp_path / "server-keys"
    r = bundle_cli("keys", "accept", str(statement), "--trust", str(old_pub), "--dir", str(server_keys))
    assert r.returncode == 0, r.stderr
    (accepted,) = server_keys.glob("*.pub")
    assert load_public_key(accepted).same_key(new.public)

    # Bundles of the rotated key: refused while only the old key is trusted, accepted after.
    out = tmp_path / "stick"
    out.mkdir()
    (new_bundle,) = _seal(new, central.public, out)
    r = bundle_cli("verify", str(new_bundle.path), "--trust", str(old_pub))
    assert r.returncode == 1 and "not one of the trusted senders" in r.stdout
    r = bundle_cli("verify", str(new_bundle.path), "--trust", str(old_pub), "--trust", str(accepted))
    assert r.returncode == 0, r.stdout + r.stderr

    # Revoke the old key: its bundles are refused by verify, the new key's are not.
    old_dir = tmp_path / "old-stick"
    old_dir.mkdir()
    (old_bundle,) = _seal(old, central.public, old_dir)
    revoked = tmp_path / "revoked.list"
    r = bundle_cli("keys", "revoke", str(old_pub), "--reason", "laptop stolen", "--list", str(revoked))
    assert r.returncode == 0, r.stderr
    r = bundle_cli("verify", str(old_bundle.path), str(new_bundle.path),
                   "--trust", str(old_pub), "--trust", str(accepted), "--revoked", str(revoked))
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[0].startswith("INVALID") and "revoked" in lines[0]
    assert lines[1].startswith("OK")
    # A second rotation signed by the revoked key is refused (a thief cannot hand
    # the site's trust to a key of their own).
    r = bundle_cli("keys", "rotate", "--identity", str(old_key), "--name", "thief")
    assert r.returncode == 0, r.stderr
    r = bundle_cli("keys", "accept", str(old_key.parent / "thief.rotation"), "--trust", str(old_pub),
                   "--dir", str(server_keys), "--revoked", str(revoked))
    assert "revoked" in one_clean_line(r)
    assert sorted(p.name for p in server_keys.iterdir()) == [accepted.name]
    r = bundle_cli("keys", "revoked", str(revoked))
    assert "laptop stolen" in r.stdout and old.fingerprint in r.stdout
    record("keys", trials=1, rejected=2, accepted=2)


def test_a_statement_is_checked_completely(tmp_path, site, record):
    old, old_key, old_pub = site
    new, _, _, path = rotate(old_key, tmp_path / "new")
    text = Path(path).read_text()
    rot = read_rotation(path, trusted=[old.public])
    assert rot.old.same_key(old.public) and rot.new.same_key(new.public)

    # Every single-byte change of the signed lines and signatures is refused.
    data = Path(path).read_bytes()
    start = data.index(b"bundlekit-rotation: v1")
    rejected = 0
    for i in range(start, len(data)):
        for bit in (0x01, 0x20):
            forged = bytearray(data)
            forged[i] ^= bit
            try:
                parse_rotation(forged.decode("utf-8", "replace"))
            except RotationError:
                rejected += 1
                continue
            pytest.fail(f"a change at byte {i} was accepted")
    # Every truncation too.
    for n in range(start, len(data) - 1):
        with pytest.raises(RotationError):
            parse_rotation(data[:n].decode("utf-8", "replace"))

    stranger = Identity.generate(old.site)
    # Signed by the new key only (the "old" signature made by someone else).
    fake = rotation_text(stranger, new)
    fake_path = tmp_path / "fake.rotation"
    fake_path.write_text(fake)
    with pytest.raises(UnknownSender):  # form and signatures fine; stranger not trusted
        read_rotation(fake_path, trusted=[old.public])
    lines = text.splitlines()
    swapped = "\n".join(
        line.replace(old.public.verify_key, stranger.public.verify_key) for line in lines
    )
    with pytest.raises(RotationError):
        parse_rotation(swapped)
    with pytest.raises(RevokedKey):
        read_rotation(path, trusted=[old.public], revoked=[old.public])
    with pytest.raises(RevokedKey):
        read_rotation(path, trusted=[old.public], revoked=[new.public.fingerprint])
    with pytest.raises(ValueError):
        rotation_text(old, Identity.generate("another site"))
    # Accepting twice is harmless; a different key under that name is refused.
    d = tmp_path / "trust"
    _, pub1 = accept_rotation(path, [old.public], d)
    _, pub2 = accept_rotation(path, [old.public], d)
    assert pub1 == pub2
    with pytest.raises(RotationError):
        read_rotation(old_pub, trusted=[old.public])  # a .pub is not a statement
    record("keys", trials=rejected, rejected=rejected, accepted=0)


def test_revocation_list_file(tmp_path, site):
    old, _, old_pub = site
    lst = tmp_path / "revoked.list"
    entry, added = revoke(lst, old.public, "retired after rotation")
    assert added
    again, added = revoke(lst, old.public, "another reason")
    assert not added and again.reason == "retired after rotation"
    other = Identity.generate("site-b")
    revoke(lst, other.public, "stolen")
    assert [r.key.fingerprint for r in read_revocations(lst)] == [old.fingerprint, other.fingerprint]
    keys = load_revoked([str(lst), str(old_pub), "ABCD-0000-0000-0000-0000-0000-0000-0000"])
    assert len(keys) == 4 and keys[3] == "abcd-0000-0000-0000-0000-0000-0000-0000"
    # A revoked signing key is refused whatever encryption key it is paired with.
    hybrid = Identity(old.site, other.x25519_secret, old.ed25519_secret)
    out = tmp_path / "out"
    out.mkdir()
    (b,) = _seal(hybrid, other.public, out)
    with pytest.raises(RevokedKey):
        verify(b.path, revoked=load_revoked([str(lst)]))
    # Damage is an error, never an empty list (that would silently un-revoke).
    text = lst.read_text()
    lst.write_text(text.replace("reason: stolen", "reasn: stolen"))
    with pytest.raises(RevocationListError):
        read_revocations(lst)
    with pytest.raises(RevocationListError):
        load_revoked([str(lst)])
    with pytest.raises(KeyFileError):
        load_revoked([str(tmp_path / "missing.list")])
    key_file = tmp_path / "site" / "site-a.key"
    with pytest.raises(KeyFileError, match="secret key"):
        load_revoked([str(key_file)])
    with pytest.raises(ValueError):
        revoke(tmp_path / "x.list", old.public, "two\nlines")


@pytest.mark.django_db(databases=["default", "server"])
def test_import_refuses_a_revoked_key_and_keeps_what_was_applied(tmp_path, site):
    """Import through the settings dict: BUNDLEKIT['REVOKED'] (a .pub or a fingerprint),
    read by django_adapter.conf, refuses the key's bundles; a rotated key goes on."""
    from types import SimpleNamespace

    from django.test import override_settings

    from django_adapter.conf import get_config
    from django_adapter.exporter import export_pending
    from django_adapter.importer import import_bundle
    from tests.test_app import models as m

    old, old_key, old_pub = site
    central = Identity.generate("central")
    central_key, _ = write_keypair(central, tmp_path / "site", "central")
    with override_settings(BUNDLEKIT_SITE=old.site):  # records name the site that signs them
        m.Household.objects.create(code="HH-1")
        (b1,) = export_pending(tmp_path / "outbox", identity=old, recipients=[central.public])
        new, new_key, new_pub, statement = rotate(old_key)
        _, accepted = accept_rotation(statement, [old.public], tmp_path / "server-keys")
        m.Household.objects.create(code="HH-2")
        (b2,) = export_pending(tmp_path / "outbox", identity=new, recipients=[central.public])
        m.Household.objects.create(code="HH-3")
    (b3,) = export_pending(tmp_path / "outbox-old", identity=old, recipients=[central.public])

    def config(revoked):
        settings = SimpleNamespace(BUNDLEKIT={
            "SITE": "central", "IDENTITY": str(central_key),
            "TRUSTED": [str(old_pub), str(accepted)], "REVOKED": revoked,
        })
        return get_config(settings=settings)

    c = config([])
    r1 = import_bundle(tmp_path / "outbox" / b1.file_name, identities=[c.identity],
                       trusted=c.trusted, revoked=c.revoked_keys, using="server")
    assert r1.status == "applied"
    # The old key is revoked (by its .pub, then by its fingerprint): its next bundle
    # is refused before anything is written; HH-1 stays; the new key goes on.
    for revoked in ([str(old_pub)], [old.fingerprint]):
        c = config(revoked)
        before = row_counts("server")
        with pytest.raises(RevokedKey):
            import_bundle(tmp_path / "outbox-old" / b3.file_name, identities=[c.identity],
                          trusted=c.trusted, revoked=c.revoked_keys, using="server")
        assert row_counts("server") == before
    r2 = import_bundle(tmp_path / "outbox" / b2.file_name, identities=[c.identity],
                       trusted=c.trusted, revoked=c.revoked_keys, using="server")
    assert r2.status == "applied" and r2.seq == 1  # the new key's own chain
    codes = set(m.Household.objects.using("server").values_list("code", flat=True))
    assert codes == {"HH-1", "HH-2"}
