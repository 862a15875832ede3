"""The admin pages load and filter, and never allow editing the ledgers."""

import pytest
from django.contrib.auth.models import User

from django_adapter.models import OutgoingTransaction
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("admin", "a@example.org", "pw")
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "page",
    [
        "outgoingtransaction/?tx_name=test_app.household&action__exact=I",
        "incomingtransaction/?status__exact=failed",
        "importedbundle/?status__exact=waiting-for-gap&site=site-a",
        "exportedbundle/",
        "conflictingtransaction/?resolution=",
        "decision/?choice__exact=keep-server",
        "outgoingtransaction/?server_outcome=failed",
    ],
)
def test_pages_load_with_filters(staff, page):
    m.Household.objects.create(code="HH-1")
    response = staff.get(f"/admin/django_adapter/{page}")
    assert response.status_code == 200


def test_outgoing_transaction_is_read_only(staff):
    m.Household.objects.create(code="HH-1")
    out = OutgoingTransaction.objects.get()
    assert staff.get("/admin/django_adapter/outgoingtransaction/add/").status_code == 403
    response = staff.post(f"/admin/django_adapter/outgoingtransaction/{out.pk}/change/", {"action": "D"})
    assert response.status_code == 403
    assert OutgoingTransaction.objects.get().action == "I"


def test_a_decision_is_shown_with_who_when_and_why(staff):
    """bundle resolve's record, as the data manager's colleagues see it."""
    import uuid

    from django_adapter.models import Decision

    tx = uuid.uuid4()
    Decision.objects.create(tx_id=tx, choice="keep-server", outcome_before="conflict",
                            outcome_after="superseded", who="nurse-in-charge",
                            note="the laptop was restored from backup", site="site-a",
                            tx_name="test_app.household")
    page = staff.get("/admin/django_adapter/decision/").content.decode()
    for shown in (str(tx), "keep-server", "nurse-in-charge", "the laptop was restored from backup",
                  "superseded"):
        assert shown in page
    decision = Decision.objects.get()
    assert staff.post(f"/admin/django_adapter/decision/{decision.pk}/change/",
                      {"note": "rewritten"}).status_code == 403
    assert Decision.objects.get().note == "the laptop was restored from backup"
