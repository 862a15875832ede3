"""Tamper, replay, rollback and forks on the import path, and on receipts.

Every single-byte change and every truncation of a bundle is refused by
``import_bundle`` before any row changes (rows are counted before and after each
attempt); the same for a receipt at the site (``apply_receipt``).  A bundle
re-signed by an unknown or a revoked key is refused; an old bundle replayed is a
no-op; a different bundle reusing a sequence number (a fork) is quarantined and
reported, nothing in it applied.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from bundlekit import container
from bundlekit.errors import BundleError, ReceiptError, RevokedKey, UnknownSender
from bundlekit.keys import Identity, write_keypair
from bundlekit.manifest import Manifest, bundle_digest, sign
from bundlekit.naming import bundle_name
from bundlekit.writer import ChainLink, seal
from django_adapter.conf import get_config
from django_adapter.exporter import export_pending
from django_adapter.importer import import_bundle
from django_adapter.models import BundleStatus, ExportedBundle, ImportedBundle, OutgoingTransaction
from django_adapter.receipts import apply_receipt, write_receipts
from tests.reliability.conftest import seed_for
from tests.reliability.helpers import row_counts, snapshot
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])


@pytest.fixture
def world(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    site, central, stranger = (Identity.generate(n) for n in ("site-a", "central", "stranger"))
    paths = {}
    for name, ident in (("site-a", site), ("central", central), ("stranger", stranger)):
        paths[name] = write_keypair(ident, keys, name)

    def config(me, database, trusted, revoked=()):
        return get_config(settings=SimpleNamespace(BASE_DIR=str(tmp_path), BUNDLEKIT={
            "SITE": me, "IDENTITY": paths[me][0], "RECIPIENTS": [paths["central"][1]],
            "TRUSTED": [paths[t][1] for t in trusted], "REVOKED": list(revoked),
            "DATABASE": database, "OUTBOX": str(tmp_path / f"outbox-{me}"),
            "RECEIPTS_OUT": str(tmp_path / "receipts"),
        }))

    return SimpleNamespace(site=site, central=central, stranger=stranger, paths=paths,
                           config=config, tmp=tmp_path)


def export_some(w, codes, out="outbox"):
    for c in codes:
        m.Household.objects.create(code=c, village=f"village of {c}")
    (b,) = export_pending(w.tmp / out, identity=w.site, recipients=[w.central.public])
    return w.tmp / out / b.file_name


def server_rows():
    return row_counts("server")


def attempt_all(w, data: bytes, work: Path, label: str, mutations) -> tuple[int, int]:
    """Import each mutation of ``data``; every one must be refused, DB unchanged."""
    before = server_rows()
    refused = accepted = 0
    for i, mutated in mutations:
        work.write_bytes(mutated)
        try:
            import_bundle(work, identities=[w.central], trusted=[w.site.public], using="server")
        except BundleError:
            refused += 1
        else:
            accepted += 1
            pytest.fail(f"{label} at {i} was imported")
        # Cheap check each time; the full table-by-table check at the end.
        assert ImportedBundle.objects.using("server").count() == before["django_adapter.ImportedBundle"]
    assert server_rows() == before
    return refused, accepted


def test_every_byte_change_and_truncation_of_a_bundle_is_refused_before_any_row_changes(
        world, record):
    w = world
    seed = seed_for("tamper")
    rng = random.Random(seed)
    path = export_some(w, [f"HH-{i}" for i in range(4)])
    data = path.read_bytes()
    import_bundle(path, identities=[w.central], trusted=[w.site.public], using="server")
    # A second, not yet imported bundle is the one we damage: a change that slipped
    # through would apply rows.
    path2 = export_some(w, ["HH-9"])
    data = path2.read_bytes()
    work = w.tmp / "work" / path2.name
    work.parent.mkdir()

    def flips():
        for i in range(len(data)):
            b = bytearray(data)
            b[i] ^= rng.randrange(1, 256)
            yield i, bytes(b)

    def truncations():
        for n in range(len(data)):
            yield n, data[:n]

    def extensions():
        for n in (1, 17, 4096):
            yield n, data + rng.randbytes(n)

    r1, a1 = attempt_all(w, data, work, "a changed byte", flips())
    r2, a2 = attempt_all(w, data, work, "a truncation", truncations())
    r3, a3 = attempt_all(w, data, work, "an extension", extensions())
    record("tamper-bundle", trials=r1 + r2 + r3 + a1 + a2 + a3, rejected=r1 + r2 + r3,
           accepted=a1 + a2 + a3, seed=seed, bundle_bytes=len(data), lost=0, applied_twice=0)
    # The intact file still imports: the refusals were about the damage.
    work.write_bytes(data)
    assert import_bundle(work, identities=[w.central], trusted=[w.site.public],
                         using="server").status == "applied"


def resign(data: bytes, signer: Identity, out: Path) -> Path:
    """The same payload under a manifest naming and signed by ``signer``."""
    import io

    layout = container.read_layout(io.BytesIO(data))
    old = Manifest.from_bytes(layout.manifest)
    fields = {f: getattr(old, f) for f in old.__dataclass_fields__}
    fields.update(sender=signer.public, bundle_id=uuid.uuid4())
    manifest = Manifest(**fields)
    mb = manifest.to_bytes()
    sig = sign(signer, mb)
    payload = data[len(container.MAGIC): len(container.MAGIC) + layout.payload_size]
    name = bundle_name(signer.site, manifest.seq, bundle_digest(mb, sig))
    target = out / name
    target.write_bytes(container.MAGIC + payload + container.trailer(len(payload), mb, sig))
    return target


def test_resigned_by_unknown_or_revoked_key_replay_and_fork(world, record):
    w = world
    p1 = export_some(w, ["HH-1", "HH-2"])
    p2 = export_some(w, ["HH-3"])
    server = w.config("central", "server", trusted=["site-a"])
    kw = dict(identities=[server.identity], trusted=server.trusted, using="server")

    # Re-signed by a stranger: a valid bundle, but not from a trusted sender.
    forged = resign(p1.read_bytes(), w.stranger, w.tmp)
    before = server_rows()
    with pytest.raises(UnknownSender):
        import_bundle(forged, **kw)
    # Trusted (say, by mistake) but revoked through the settings dict: refused too.
    revoking = w.config("central", "server", trusted=["site-a", "stranger"],
                        revoked=[w.paths["stranger"][1]])
    with pytest.raises(RevokedKey):
        import_bundle(forged, identities=[revoking.identity], trusted=revoking.trusted,
                      revoked=revoking.revoked_keys, using="server")
    assert server_rows() == before

    assert import_bundle(p1, **kw).status == "applied"
    assert import_bundle(p2, **kw).status == "applied"
    # Replay (rollback attempt): the old bundle again, and under another name.
    state = snapshot("server")
    replays = 0
    for path in (p1, p2):
        for copy in (path, w.tmp / ("copy-" + path.name)):
            copy.write_bytes(path.read_bytes())
            r = import_bundle(copy, **kw)
            assert r.status == "duplicate" and r.applied == 0
            replays += 1
    assert snapshot("server") == state

    # A fork: another bundle with seq 1 signed by the site itself (a laptop restored
    # from a backup, or a stolen key): quarantined, reported, nothing applied.
    recs = [{"id": uuid.uuid4(), "model": "test_app.household", "action": "I", "pk": 999,
             "natural_key": ["FORK-1"], "ts": None, "producer": "x", "fields": {}, "m2m": {}}]
    (w.tmp / "fork").mkdir()
    (fork,) = seal(recs, identity=w.site, recipients=[w.central.public], out_dir=w.tmp / "fork",
                   after=ChainLink(0, None))
    r = import_bundle(fork.path, **kw)
    assert r.status == BundleStatus.FORK and any("fork" in msg for msg in r.messages)
    assert r.applied == 0
    ib = ImportedBundle.objects.using("server").get(bundle_id=str(fork.manifest.bundle_id))
    assert ib.status == BundleStatus.FORK
    assert not m.Household.objects.using("server").filter(code="FORK-1").exists()
    # The fork does not block the sender's true chain.
    p3 = export_some(w, ["HH-4"])
    assert import_bundle(p3, **kw).status == "applied"
    record("replay-fork", trials=replays + 3, rejected=2, accepted=0, replays_no_op=replays,
           forks_quarantined=1, lost=0, applied_twice=0)


def test_every_byte_change_and_truncation_of_a_receipt_is_refused(world, record):
    w = world
    site_cfg = w.config("site-a", "default", trusted=["central"])
    server_cfg = w.config("central", "server", trusted=["site-a"])
    p1 = export_some(w, ["HH-1", "HH-2"])
    import_bundle(p1, identities=[w.central], trusted=[w.site.public], using="server")
    (receipt,) = write_receipts([w.site.fingerprint], config=server_cfg)
    data = receipt.read_bytes()
    seed = seed_for("tamper-receipt")
    rng = random.Random(seed)

    def site_state():
        return (sorted(OutgoingTransaction.objects.values_list("tx_id", "is_consumed_server")),
                sorted(ExportedBundle.objects.values_list("bundle_id", "acknowledged")))

    before = site_state()
    work = w.tmp / "r" / receipt.name
    work.parent.mkdir()
    refused = 0
    mutations = [(i, bytes(data[:i]) + bytes([data[i] ^ rng.randrange(1, 256)]) + data[i + 1:])
                 for i in range(len(data))]
    mutations += [(n, data[:n]) for n in range(len(data))]
    for _i, mutated in mutations:
        work.write_bytes(mutated)
        with pytest.raises(ReceiptError):
            apply_receipt(work, config=site_cfg)
        refused += 1
    assert site_state() == before
    # A receipt signed by a key the site does not trust, or meant for another site.
    stranger_server = w.config("stranger", "server", trusted=["site-a"])
    (forged,) = write_receipts([w.site.fingerprint], config=stranger_server,
                               out_dir=w.tmp / "forged")
    with pytest.raises(ReceiptError, match="do not trust"):
        apply_receipt(forged, config=site_cfg)
    assert site_state() == before
    # The intact receipt marks the bundle delivered.
    rep = apply_receipt(receipt, config=site_cfg)
    assert rep.acknowledged == 1 and rep.transactions == 2
    record("tamper-receipt", trials=refused + 1, rejected=refused + 1, accepted=0, seed=seed,
           receipt_bytes=len(data), lost=0, applied_twice=0)
