"""The site named on captured records is the site that signs their bundle.

The server refuses a record whose producer names another site than its bundle's
signer, so capture reads ``BUNDLEKIT["SITE"]``; edc-sync's ``BUNDLEKIT_SITE`` is
only the fallback of a project without the dict, and a disagreement between the
two is a system check error (``django_adapter.E103``).
"""

import pytest

from django_adapter import capture
from django_adapter.checks import check_site_names
from django_adapter.models import IncomingTransaction, OutgoingTransaction
from django_adapter.workflow import export_to, import_paths
from tests.django_adapter.workflow_support import config_of, site_settings
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])


def laptop(settings, keys, tmp_path, site="site-b"):
    """A laptop configured the way docs/ADOPTING.md says: only BUNDLEKIT['SITE']."""
    bundlekit = site_settings(keys, tmp_path, site=site)
    settings.BUNDLEKIT = bundlekit
    if hasattr(settings, "BUNDLEKIT_SITE"):
        del settings.BUNDLEKIT_SITE
    return config_of(bundlekit, tmp_path)


def capture_export_import(config, server, usb):
    for i in range(3):
        m.Household.objects.create(code=f"HH-{i}")
    m.Household.objects.filter(code="HH-0").update(village="renamed")
    m.Household.objects.get(code="HH-2").delete()
    export_to(usb, config=config)
    return import_paths([usb], config=server)


def test_only_bundlekit_site_names_the_producer_and_every_record_applies(settings, keys, tmp_path,
                                                                          server, usb):
    config = laptop(settings, keys, tmp_path)
    assert check_site_names() == []
    run = capture_export_import(config, server, usb)
    producers = set(OutgoingTransaction.objects.values_list("producer", flat=True))
    assert {p.split("/", 1)[0] for p in producers} == {"site-b"}
    (f,) = run.files
    assert (f.status, f.site, f.applied, f.failed) == ("applied", "site-b", 5, 0)
    assert not IncomingTransaction.objects.using("server").exclude(status="applied").exists()
    assert set(m.Household.objects.using("server").values_list("code", "village")) == {
        ("HH-0", "renamed"), ("HH-1", "")}


def test_bundlekit_site_wins_over_the_edc_sync_setting(settings, keys, tmp_path, server, usb):
    config = laptop(settings, keys, tmp_path)
    settings.BUNDLEKIT_SITE = "site-a"  # left over from edc-sync, and wrong
    assert capture.site_name() == "site-b"
    (error,) = check_site_names()
    assert error.id == "django_adapter.E103" and error.is_serious()
    assert "'site-a'" in error.msg and "'site-b'" in error.msg
    run = capture_export_import(config, server, usb)
    assert (run.files[0].applied, run.files[0].failed) == (5, 0)


def test_without_the_dict_the_edc_sync_setting_names_the_site(settings):
    if hasattr(settings, "BUNDLEKIT"):
        del settings.BUNDLEKIT
    settings.BUNDLEKIT_SITE = "site-x"
    assert capture.site_name() == "site-x" and check_site_names() == []
    m.Household.objects.create(code="HH-1")
    assert OutgoingTransaction.objects.get().producer.startswith("site-x/")


def test_same_name_in_both_is_fine(settings, keys, tmp_path):
    laptop(settings, keys, tmp_path, site="site-a")
    settings.BUNDLEKIT_SITE = "site-a"
    assert check_site_names() == []
