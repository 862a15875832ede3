"""The dashboard's pages in-process (Django's test client), on every backend:
who may see and do what, the numbers after a real import, the review actions,
rejected files and the upload."""

import pytest
from django.urls import reverse

from bundlekit.inbox import REJECTED
from django_adapter.models import IncomingTransaction, TxStatus
from django_adapter.workflow import WatchedInbox
from tests.django_adapter.dashboard.conftest import make_user

pytestmark = pytest.mark.django_db(databases=["default", "server"])

OVERVIEW = reverse("bundlekit-dashboard:overview")
REVIEW = reverse("bundlekit-dashboard:review")
ACT = reverse("bundlekit-dashboard:review-act")
UPLOAD = reverse("bundlekit-dashboard:upload")
REJECTED_PAGE = reverse("bundlekit-dashboard:rejected")


def card(html: str, site: str) -> str:
    start = html.index(f'data-site="{site}"')
    end = html.find("</section>", start)
    return html[start:end]


def test_someone_not_signed_in_is_sent_to_the_login_page(client, field):
    r = client.get(OVERVIEW)
    assert r.status_code == 302
    assert r["Location"].startswith(reverse("bundlekit-dashboard:login") + "?next=")


def test_a_user_who_is_not_staff_is_refused_even_with_the_permission(client, field):
    client.force_login(make_user("clerk", staff=False, perms=("view_dashboard",)))
    for url in (OVERVIEW, REVIEW, REJECTED_PAGE, UPLOAD):
        r = client.get(url)
        assert r.status_code == 403 and b"not staff" in r.content


def test_staff_without_the_view_permission_is_refused(client, field):
    client.force_login(make_user("staff", perms=()))
    r = client.get(OVERVIEW)
    assert r.status_code == 403 and b"view_dashboard" in r.content


def test_the_overview_shows_each_site_with_its_numbers(client, field, monitor):
    client.force_login(monitor)
    r = client.get(OVERVIEW)
    assert r.status_code == 200
    html = r.content.decode()
    a, b = card(html, "site-a"), card(html, "site-b")
    assert field.keys.ids["site-a"].fingerprint in a and "key trusted" in a
    assert '<span class="n">0</span> failed' in a and '<span class="n">2</span> failed' in b
    # Both applied through seq 1 today: 3 and 2 records in the chart.
    assert "3 records applied" in a and "2 records applied" in b
    assert "today" in a and "not heard from" not in a


def test_a_quiet_site_and_key_states_are_shown(client, field, monitor, settings):
    from django_adapter.models import ImportedBundle

    ImportedBundle.objects.using("server").filter(site="site-b").update(
        received="2020-01-01T00:00:00Z")
    revoked = field.keys.ids["site-b"].fingerprint
    settings.BUNDLEKIT = {**field.settings, "REVOKED": [revoked], "DASHBOARD": {"QUIET_DAYS": 3}}
    client.force_login(monitor)
    html = client.get(OVERVIEW).content.decode()
    b = card(html, "site-b")
    assert "not heard from for more than 3 days" in b and "key revoked" in b
    assert "not heard from" not in card(html, "site-a")


def test_a_site_page_lists_its_bundles_and_what_needs_attention(client, field, monitor):
    client.force_login(monitor)
    fp = field.keys.ids["site-b"].fingerprint
    r = client.get(reverse("bundlekit-dashboard:site", args=[fp]))
    html = r.content.decode()
    assert r.status_code == 200 and "Site site-b" in html
    assert field.bundles["site-b"][0].name in html
    assert html.count("test_app.subject") == 2
    assert client.get(reverse("bundlekit-dashboard:site", args=["no-such"])).status_code == 404


def test_a_bundles_report_page(client, field, monitor):
    from django_adapter.models import ImportedBundle

    client.force_login(monitor)
    b = ImportedBundle.objects.using("server").get(site="site-b")
    r = client.get(reverse("bundlekit-dashboard:bundle", args=[b.fingerprint, b.bundle_id]))
    assert r.status_code == 200 and b"failed 2" in r.content


def test_the_queue_filters_and_shows_the_record_beside_the_servers_row(client, field, monitor):
    client.force_login(monitor)
    html = client.get(REVIEW).content.decode()
    assert 'data-count="2"' in html and "S-1" in html and "S-2" in html
    assert "<form method=\"post\"" not in html  # a monitor gets no buttons
    assert 'data-count="0"' in client.get(REVIEW, {"site": "site-a"}).content.decode()
    assert 'data-count="2"' in client.get(REVIEW, {"outcome": "failed"}).content.decode()
    assert 'data-count="0"' in client.get(REVIEW, {"model": "test_app.household"}).content.decode()


def test_acting_needs_the_act_permission_and_a_note(client, field, monitor, manager):
    tx = str(IncomingTransaction.objects.using("server").filter(status=TxStatus.FAILED).first().tx_id)
    client.force_login(monitor)
    assert client.post(ACT, {"tx_id": tx, "action": "retry", "note": "x"}).status_code == 403

    client.force_login(manager)
    r = client.post(ACT, {"tx_id": tx, "action": "discard", "note": "  "}, follow=True)
    assert "Nothing was changed: a note is required" in r.content.decode()
    assert IncomingTransaction.objects.using("server").filter(status=TxStatus.FAILED).count() == 2

    # Retrying before the household arrived still fails, and says why.
    r = client.post(ACT, {"tx_id": tx, "action": "retry", "note": "try again"}, follow=True)
    assert "not applied" in r.content.decode()


def test_post_needs_the_csrf_token(field, manager):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(manager)
    tx = str(IncomingTransaction.objects.using("server").filter(status=TxStatus.FAILED).first().tx_id)
    r = strict.post(ACT, {"tx_id": tx, "action": "discard", "note": "n"})
    assert r.status_code == 403
    assert IncomingTransaction.objects.using("server").filter(status=TxStatus.FAILED).count() == 2


def test_a_bad_transaction_id_is_a_message_not_an_error(client, field, manager):
    client.force_login(manager)
    r = client.post(ACT, {"tx_id": "x';--", "action": "retry", "note": "n"}, follow=True)
    assert r.status_code == 200 and "is not a transaction id" in r.content.decode()


def test_rejected_files_from_the_watched_inbox_are_listed_with_their_reason(client, field, monitor):
    inbox = field.config.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "broken-00000001-deadbeef.bundle").write_bytes(b"not a bundle at all" * 10)
    WatchedInbox(config=field.config, settle_seconds=0).scan_once()
    assert (inbox / REJECTED / "broken-00000001-deadbeef.bundle").exists()
    client.force_login(monitor)
    html = client.get(REJECTED_PAGE).content.decode()
    assert "broken-00000001-deadbeef.bundle" in html and "watched inbox" in html
    assert "is not a bundle" in html


def test_upload_imports_through_the_servers_intake_and_shows_the_report(
    client, tmp_path, settings, manager
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from django_adapter.models import ImportedBundle
    from tests.django_adapter.dashboard import scenario

    made = scenario.build(tmp_path, import_now=False)
    settings.BUNDLEKIT = made.settings
    client.force_login(manager)
    (a,) = made.bundles["site-a"]
    # Whatever the browser calls it, it is kept under the name the export gave it.
    renamed = SimpleUploadedFile("Copy of bundle (2).bundle", a.read_bytes())
    html = client.post(UPLOAD, {"bundles": renamed}).content.decode()
    assert 'data-status="applied"' in html and "applied 3, duplicate 0" in html
    assert "Receipt written: receipt-central-site-a-" in html
    assert (made.config.inbox / "done" / a.name).read_bytes() == a.read_bytes()
    assert ImportedBundle.objects.using("server").get(site="site-a").route == "upload"

    again = client.post(UPLOAD, {"bundles": SimpleUploadedFile(a.name, a.read_bytes())})
    assert 'data-status="duplicate"' in again.content.decode()

    junk = client.post(UPLOAD, {"bundles": SimpleUploadedFile("x.bundle", b"junk" * 100)})
    assert 'data-status="rejected"' in junk.content.decode()
    assert sorted(p.name for p in (made.config.inbox / "done").iterdir()) == [a.name]
    assert not (made.config.inbox / "rejected").exists()

    assert client.post(UPLOAD, {"bundles": []}).status_code == 400


def test_a_wrong_settings_dict_is_a_page_that_says_so(client, field, monitor, settings):
    settings.BUNDLEKIT = {"SITE": "central"}
    client.force_login(monitor)
    r = client.get(OVERVIEW)
    assert r.status_code == 503 and b"IDENTITY" in r.content


def test_the_stylesheet_and_script_are_served_by_the_app(client):
    r = client.get(reverse("bundlekit-dashboard:asset", args=["dashboard.css"]))
    assert r.status_code == 200 and r["Content-Type"].startswith("text/css")
    assert client.get(reverse("bundlekit-dashboard:asset", args=["nope.css"])).status_code == 404


def test_a_fork_uploaded_by_the_page_is_listed_as_rejected_with_its_route(
    client, field, manager
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from django_adapter.exporter import export_pending
    from tests.test_app import models as m

    # A "restored" site-a seals seq 1 again with other content: a fork.
    m.Tag.objects.using("server").create(code="restored")
    (fork,) = export_pending(field.root / "restored", identity=field.keys.ids["site-a"],
                             recipients=[field.keys.ids["central"].public], using="server")
    data = (field.root / "restored" / fork.file_name).read_bytes()
    client.force_login(manager)
    html = client.post(UPLOAD, {"bundles": SimpleUploadedFile("f.bundle", data)}).content.decode()
    assert 'data-status="quarantined-fork"' in html
    listed = client.get(REJECTED_PAGE).content.decode()
    assert fork.file_name in listed and "upload page" in listed and "fork" in listed


def test_a_sites_page_lists_its_newest_bundles_when_there_are_many(
    client, field, monitor, monkeypatch
):
    from django_adapter.dashboard import views
    from django_adapter.workflow import import_paths
    from tests.django_adapter.dashboard import scenario

    scenario.site_a_changes_more()
    second = scenario.seal(field.keys, field.root, "site-a")
    import_paths([second], config=field.config)
    monkeypatch.setattr(views, "BUNDLES_PAGE", 1)
    client.force_login(monitor)
    html = client.get(reverse("bundlekit-dashboard:site",
                              args=[field.keys.ids["site-a"].fingerprint])).content.decode()
    assert "The newest 1 of 2." in html
    assert second.name in html and field.bundles["site-a"][0].name not in html
