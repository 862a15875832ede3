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
        "conflictingtransaction/",
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
