"""Roles (issue 10): who may send us bundles is not who may acknowledge ours.

A laptop accepts receipts only from the servers it seals for (RECEIPTS_FROM, by
default its RECIPIENTS), never from a peer laptop it trusts as a sender: a peer's
receipt would let ``bundle prune`` delete data the server never received.
"""

import uuid

import pytest
from django.test import override_settings

from bundlekit.receipt import write_receipt
from django_adapter.conf import check_settings
from django_adapter.models import ExportedBundle, OutgoingTransaction
from django_adapter.receipts import apply_receipt
from django_adapter.workflow import export_to, import_receipts, prune
from tests.django_adapter.workflow_support import config_of, site_settings
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])


def peer_receipt(keys, tmp_path, config) -> str:
    """site-b signs a receipt saying it holds all of site-a's bundles: their ids and
    digests are in the clear manifests on the stick."""
    entries = [
        {"bundle_id": uuid.UUID(b.bundle_id), "seq": b.seq,
         "digest": bytes.fromhex(b.digest), "status": "applied", "records": b.record_count}
        for b in ExportedBundle.objects.all()
    ]
    out = tmp_path / "forged"
    out.mkdir(exist_ok=True)
    return str(write_receipt(out, issuer=keys.ids["site-b"], subject=config.identity.public,
                             entries=entries))


@pytest.mark.attack
@pytest.mark.parametrize(
    "settings_of",
    [
        # The example project's old settings: every laptop trusted, receipts from TRUSTED.
        lambda keys: {"TRUSTED": [str(keys.pub("site-a")), str(keys.pub("site-b")),
                                  str(keys.pub("central"))], "RECEIPTS_FROM": None},
        # The new ones: peers send, only central acknowledges.
        lambda keys: {"TRUSTED": [str(keys.pub("site-b"))],
                      "RECEIPTS_FROM": [str(keys.pub("central"))]},
    ],
    ids=["old-settings", "roles"],
)
def test_a_peer_laptop_cannot_make_us_prune(keys, tmp_path, usb, settings_of):
    extra = {k: v for k, v in settings_of(keys).items() if v is not None}
    bundlekit = site_settings(keys, tmp_path, **extra)
    if "RECEIPTS_FROM" not in extra:
        bundlekit.pop("RECEIPTS_FROM")
    site = config_of(bundlekit, tmp_path)
    for i in range(14):
        m.Household.objects.create(code=f"HH-{i}")
    export_to(usb, config=site)

    run = import_receipts([peer_receipt(keys, tmp_path, site)], config=site)
    (report,) = run.files
    assert not run.ok and report.code == "receipt-untrusted"
    assert "RECEIPTS_FROM" in report.reason
    assert prune(config=site).transactions == 0
    assert OutgoingTransaction.objects.count() == 14
    assert not ExportedBundle.objects.get().acknowledged


def test_receipts_from_defaults_to_the_recipients(keys, tmp_path):
    bundlekit = site_settings(keys, tmp_path)
    bundlekit.pop("RECEIPTS_FROM")
    site = config_of(bundlekit, tmp_path)
    assert [k.site for k in site.receipt_issuers()] == ["central"]
    explicit = config_of(site_settings(keys, tmp_path, RECEIPTS_FROM=[str(keys.pub("site-b"))]),
                         tmp_path)
    assert [k.site for k in explicit.receipt_issuers()] == ["site-b"]


def test_an_empty_receipts_from_is_a_config_error(keys, tmp_path):
    from django_adapter.conf import ConfigError

    site = config_of(site_settings(keys, tmp_path, RECEIPTS_FROM=[]), tmp_path)
    with pytest.raises(ConfigError, match=r"RECEIPTS_FROM'\] is empty"):
        site.receipt_issuers()


def test_the_check_warns_about_a_sending_peer_and_old_settings(keys, tmp_path):
    old = site_settings(keys, tmp_path, TRUSTED=[str(keys.pub("site-b")), str(keys.pub("central"))])
    old.pop("RECEIPTS_FROM")
    with override_settings(BUNDLEKIT=old):
        ids = sorted(w.id for w in check_settings())
    # site-b is no longer an issuer (W103 says so), central both sends and acknowledges (W104).
    assert ids == ["django_adapter.W103", "django_adapter.W104"]
    peer = site_settings(keys, tmp_path, RECEIPTS_FROM=[str(keys.pub("site-b"))])
    with override_settings(BUNDLEKIT=peer):
        (warning,) = check_settings()
    assert warning.id == "django_adapter.W104" and "site-b" in warning.msg
    with override_settings(BUNDLEKIT=site_settings(keys, tmp_path)):
        assert check_settings() == []


def test_a_receipt_from_the_server_still_acknowledges(keys, tmp_path, usb, site):
    m.Household.objects.create(code="HH-1")
    export_to(usb, config=site)
    b = ExportedBundle.objects.get()
    out = tmp_path / "good"
    out.mkdir()
    path = write_receipt(out, issuer=keys.ids["central"], subject=site.identity.public, entries=[
        {"bundle_id": uuid.UUID(b.bundle_id), "seq": 1,
         "digest": bytes.fromhex(b.digest), "status": "applied", "records": 1}])
    report = apply_receipt(path, config=site)
    assert (report.acknowledged, report.transactions) == (1, 1)
