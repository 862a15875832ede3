"""take_in(): the one import path behind the inbox, `bundle import`, REST and uploads."""

import json
import shutil

import pytest

from bundlekit.errors import BundleError, UnknownSender
from bundlekit.inbox import REASON_JSON, REASON_TXT
from bundlekit.writer import ChainLink, seal
from django_adapter.conf import ConfigError
from django_adapter.exporter import export_pending
from django_adapter.intake import ROUTES, take_in
from django_adapter.models import ImportedBundle
from django_adapter.workflow import export_to
from tests.django_adapter.workflow_support import config_of, server_settings
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])


def one_bundle(site, usb, code="HH-1"):
    m.Household.objects.create(code=code)
    (name,) = export_to(usb, config=site).copied
    return usb / name


def test_each_route_is_recorded_once_and_a_second_copy_is_a_duplicate(site, server, usb, tmp_path):
    bundle = one_bundle(site, usb)
    report = take_in(bundle, route="import", config=server)
    assert (report.status, report.applied, report.route) == ("applied", 1, "import")
    row = ImportedBundle.objects.using("server").get()
    assert row.route == "import"
    # The same bundle pushed over REST later: a duplicate, the first route stays.
    again = take_in(bundle, route="rest", config=server)
    assert (again.status, again.route) == ("duplicate", "rest")
    assert ImportedBundle.objects.using("server").get().route == "import"
    assert bundle.exists(), "a file that is not staged is never moved"
    assert set(ROUTES) == {"inbox", "import", "rest", "upload"}
    with pytest.raises(ValueError):
        take_in(bundle, route="carrier-pigeon", config=server)


def test_a_staged_file_is_kept_in_done_and_its_receipt_written_at_once(site, server, usb, tmp_path):
    bundle = one_bundle(site, usb)
    staged = tmp_path / "upload" / bundle.name
    staged.parent.mkdir()
    shutil.copy(bundle, staged)
    report = take_in(staged, route="upload", config=server, staged=True, receipt=True)
    assert report.status == "applied" and not staged.exists()
    assert report.kept == str(server.inbox / "done" / bundle.name)
    (receipt,) = report.receipts_written
    assert receipt.startswith(str(server.receipts_out))
    assert ImportedBundle.objects.using("server").get().route == "upload"
    # A staged duplicate is dropped: the server holds a copy already.
    shutil.copy(bundle, staged)
    assert take_in(staged, route="upload", config=server, staged=True).status == "duplicate"
    assert not staged.exists() and not (server.inbox / "done" / (bundle.stem + ".2.bundle")).exists()


def test_a_staged_fork_is_quarantined_with_both_reason_files(keys, site, server, usb, tmp_path):
    take_in(one_bundle(site, usb), route="inbox", config=server)
    restored = tmp_path / "restored"
    m.Tag.objects.using("server").create(code="restored")
    export_pending(restored, identity=keys.ids["site-a"], recipients=[keys.ids["central"].public],
                   using="server")
    (fork,) = restored.iterdir()
    report = take_in(fork, route="rest", config=server, staged=True)
    assert report.status == "quarantined-fork" and not report.ok
    rejected = server.inbox / "rejected" / fork.name
    assert report.kept == str(rejected) and rejected.exists()
    assert "fork" in (server.inbox / "rejected" / (fork.name + REASON_TXT)).read_text()
    reason = json.loads((server.inbox / "rejected" / (fork.name + REASON_JSON)).read_text())
    assert reason["code"] == "quarantined-fork" and reason["file"] == fork.name


def test_a_refused_staged_file_is_deleted_and_the_error_names_it(keys, server, tmp_path):
    (tmp_path / "s").mkdir()
    (sealed,) = seal([{"id": 1}], identity=keys.ids["stranger"], after=ChainLink(0, None),
                     recipients=[keys.ids["central"].public], out_dir=tmp_path / "s")
    with pytest.raises(UnknownSender) as caught:
        take_in(sealed.path, route="upload", config=server, staged=True)
    assert caught.value.path == str(sealed.path)
    assert not (tmp_path / "s" / sealed.path).exists()
    assert ImportedBundle.objects.using("server").count() == 0


@pytest.mark.attack
@pytest.mark.parametrize(
    "record",
    [
        {"model": "test_app.household"},  # no id at all
        {"id": "not-a-uuid", "model": "test_app.household"},
        {"id": 7},
        {"id": "2b3a7f5e-93e4-4a7e-9d55-2f3c1c1a0b6e", "model": "test_app.household",
         "timestamp": None},
    ],
)
def test_signed_records_that_break_the_importer_are_refused_not_a_crash(keys, server, tmp_path, record):
    """Issue 10: a trusted sender's malformed records end as one refusal with a
    reason, never an internal error, a traceback or an endless retry."""
    (tmp_path / "s").mkdir()
    (sealed,) = seal([record], identity=keys.ids["site-a"], after=ChainLink(0, None),
                     recipients=[keys.ids["central"].public], out_dir=tmp_path / "s")
    try:
        report = take_in(sealed.path, route="inbox", config=server)
    except BundleError as exc:  # refused as a whole, with one line
        assert exc.reason and "\n" not in exc.reason
        assert exc.path == str(sealed.path)
        assert ImportedBundle.objects.using("server").count() == 0
    else:  # or taken in with the record failed, with its reason
        assert (report.applied, report.failed) == (0, 1), report
        assert all("\n" not in line for line in report.messages)


def test_a_configuration_error_is_raised_and_leaves_the_staged_file(site, keys, usb, tmp_path):
    bundle = one_bundle(site, usb)
    broken = config_of(server_settings(keys, tmp_path, REVOKED=[str(tmp_path / "gone.rev")]), tmp_path)
    with pytest.raises(ConfigError) as caught:
        take_in(bundle, route="upload", config=broken, staged=True)
    assert "REVOKED" in str(caught.value)
    assert bundle.exists()
    assert ImportedBundle.objects.using("server").count() == 0
