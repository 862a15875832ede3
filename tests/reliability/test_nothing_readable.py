"""Nothing readable on the stick: no field value of a test record appears anywhere
in a bundle's bytes, nor in the receipt that comes back.  What the clear manifest
does show (site name, model labels and counts, sizes, transaction ids of the first
and last record) is asserted too, so docs/SECURITY.md cannot drift from it."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from types import SimpleNamespace

import msgpack
import pytest

from bundlekit.keys import Identity, write_keypair
from django_adapter.conf import get_config
from django_adapter.exporter import export_pending
from django_adapter.importer import import_bundle
from django_adapter.receipts import write_receipts
from tests.test_app import models as m

SECRETS = {
    "char": "Participant Nakato Namubiru",
    "text": "HIV status: positive; CD4 412",
    "email": "nakato.namubiru@example.org",
    "slug": "mulago-ward-7",
}


def forms(value) -> list[bytes]:
    """The ways a value could leak: UTF-8, UTF-16, msgpack, lower/upper case."""
    s = str(value)
    out = {s.encode(), s.encode("utf-16-le"), msgpack.packb(s), s.lower().encode(), s.upper().encode()}
    return sorted(b for b in out if len(b) >= 6)


@pytest.mark.django_db(databases=["default", "server"])
def test_no_field_value_in_bundle_or_receipt_bytes(tmp_path, record):
    keys = tmp_path / "keys"
    keys.mkdir()
    site, central = Identity.generate("site-a"), Identity.generate("central")
    write_keypair(site, keys, "site-a")
    write_keypair(central, keys, "central")
    data = {
        **SECRETS,
        "code": "SUBJ-0042-KAMPALA",
        "url": "https://clinic.example.org/subject/0042",
        "date": dt.date(1987, 3, 14),
        "datetime": dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=dt.UTC),
        "decimal": Decimal("61.4375"),
        "uuid": uuid.UUID("6f1c1b9e-3f0e-4c47-9d6e-0a4f1f6d2b11"),
        "json": {"diagnosis": "pulmonary tuberculosis"},
        "binary": b"\x89FINGERPRINT-SCAN\x00\x01",
        "ip": "10.42.0.77",
        "file": "consents/nakato-namubiru.pdf",
    }
    m.AllFields.objects.create(**data)
    m.Household.objects.create(code="HH-Kawempe-0042", village="Kawempe Division")
    (b,) = export_pending(tmp_path / "stick", identity=site, recipients=[central.public])
    bundle = (tmp_path / "stick" / b.file_name).read_bytes()
    import_bundle(tmp_path / "stick" / b.file_name, identities=[central], using="server")
    cfg = get_config(settings=SimpleNamespace(BASE_DIR=str(tmp_path), BUNDLEKIT={
        "SITE": "central", "IDENTITY": str(keys / "central.key"),
        "TRUSTED": [str(keys / "site-a.pub")], "DATABASE": "server"}))
    (receipt_path,) = write_receipts([site.fingerprint], config=cfg, out_dir=tmp_path / "r")
    receipt = receipt_path.read_bytes()

    values = [v for v in data.values() if isinstance(v, str) and len(v) >= 6]
    values += ["pulmonary tuberculosis", "1987-03-14", data["uuid"], data["decimal"], "HH-Kawempe-0042", "Kawempe Division",
               data["binary"], data["datetime"].isoformat()]
    # The values are really in the records (so their absence below means something).
    from bundlekit.reader import open_bundle
    from bundlekit.records import to_jsonable

    with open_bundle(tmp_path / "stick" / b.file_name, identities=[central]) as opened:
        plain = repr([to_jsonable(r) for r in opened])
    for value in values:
        if isinstance(value, str):
            assert value in plain, f"{value!r} is not in the records at all"
    checked = 0
    for value in values:
        needles = [value] if isinstance(value, bytes) else forms(value)
        for needle in needles:
            assert needle not in bundle, f"{value!r} readable in the bundle"
            assert needle not in receipt, f"{value!r} readable in the receipt"
            checked += 1
    assert isinstance(data["uuid"], uuid.UUID) and isinstance(data["decimal"], Decimal)
    assert data["uuid"].bytes not in bundle
    # Metadata in the clear manifest (docs/SECURITY.md says so): site name, model labels.
    assert b"site-a" in bundle and b"test_app.allfields" in bundle
    assert isinstance(data["datetime"], dt.datetime)
    record("nothing-readable", trials=checked, rejected=0, accepted=0, leaks=0, lost=0)
