"""Issue 10, items 2 and 4: what a trusted sender signs is bound to its key.

Each test is one attack class: a sender taking another sender's transaction id,
a record claiming another producer, a record naming its object under no (or
another) natural key to slip an old change past the stale rule, and malformed
signed records.  Bundles are sealed for real and imported with import_bundle.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connections

from bundlekit import Identity
from bundlekit.writer import ChainLink, seal
from django_adapter.apply import retry_failed
from django_adapter.importer import import_bundle
from django_adapter.models import ConflictingTransaction, IncomingTransaction, TxStatus
from tests.test_app import models as m

pytestmark = [pytest.mark.django_db(databases=["default", "server"]), pytest.mark.attack]

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def world(tmp_path):
    """Two laptops and the server; ``send(laptop, records)`` seals the laptop's next
    bundle and imports it at the server."""
    ids = {name: Identity.generate(name) for name in ("laptop-a", "laptop-b", "central")}
    links = {"laptop-a": ChainLink(0, None), "laptop-b": ChainLink(0, None)}

    def send(laptop, records):
        out = tmp_path / f"{laptop}-{links[laptop].seq + 1}"
        out.mkdir()
        (sealed,) = seal(records, identity=ids[laptop], recipients=[ids["central"].public],
                         out_dir=out, after=links[laptop])
        links[laptop] = sealed.link
        return import_bundle(sealed.path, identities=[ids["central"]], using="server",
                             trusted=[ids["laptop-a"].public, ids["laptop-b"].public])

    return send


def household(code, village, *, ts, producer, tx_id=None, natural_key=...):
    return {"id": tx_id or uuid.uuid4(), "model": "test_app.household", "action": "I", "pk": 7,
            "natural_key": [code] if natural_key is ... else natural_key, "ts": ts,
            "producer": producer, "fields": {"code": code, "village": village}, "m2m": {}}


def panel(pk, code, *, ts, producer, natural_key=...):
    return {"id": uuid.uuid4(), "model": "test_app.panel", "action": "U", "pk": pk,
            "natural_key": [code] if natural_key is ... else natural_key, "ts": ts,
            "producer": producer, "fields": {"code": code}, "m2m": {}}


def test_a_sender_cannot_take_another_senders_transaction_id(world):
    """laptop-a copies laptop-b's first tx id from its clear manifest, changes a value
    and arrives first: laptop-b's real record is still applied, not a conflict."""
    real = household("HH-B", "real", ts=T0 + dt.timedelta(minutes=5), producer="laptop-b/x")
    forged = household("HH-B", "forged", ts=T0, producer="laptop-a/x", tx_id=real["id"])
    first = world("laptop-a", [forged])
    second = world("laptop-b", [real])
    assert (first.applied, second.applied, second.conflict) == (1, 1, 0), second.messages
    assert m.Household.objects.using("server").get(code="HH-B").village == "real"
    rows = IncomingTransaction.objects.using("server").filter(tx_id=real["id"])
    assert sorted(r.status for r in rows) == ["applied", "applied"]
    assert len({r.sender for r in rows}) == 2
    assert not ConflictingTransaction.objects.using("server").exists()


def test_a_record_claiming_another_producer_is_failed_with_the_reason(world):
    report = world("laptop-a", [household("HH-1", "v", ts=T0, producer="laptop-b/x")])
    assert (report.applied, report.failed) == (0, 1)
    row = IncomingTransaction.objects.using("server").get()
    assert row.status == TxStatus.FAILED
    assert "claims producer 'laptop-b/x'" in row.reason and "laptop-a" in row.reason
    assert not m.Household.objects.using("server").exists()


@pytest.mark.parametrize("natural_key", [None, ["someone-else"]])
def test_an_old_change_cannot_dodge_the_stale_rule_by_its_natural_key(world, natural_key):
    """A UUID-keyed object is named by its pk: an older change from another site
    is stale whatever natural key (or none) the record gives."""
    pk = uuid.uuid4()
    world("laptop-b", [panel(pk, "CD4", ts=T0 + dt.timedelta(hours=1), producer="laptop-b/x")])
    late = world("laptop-a", [panel(pk, "OLD", ts=T0, producer="laptop-a/x",
                                    natural_key=natural_key)])
    assert (late.applied, late.stale) == (0, 1)
    assert m.Panel.objects.using("server").get(pk=pk).code == "CD4"


def test_a_record_of_a_natural_key_model_without_a_natural_key_fails(world):
    report = world("laptop-a", [household("HH-1", "v", ts=T0, producer="laptop-a/x",
                                          natural_key=None)])
    assert (report.applied, report.failed) == (0, 1)
    assert not m.Household.objects.using("server").exists()


MALFORMED = [
    {"model": "test_app.household", "action": "I"},  # no id
    {"id": "not-a-uuid", "model": "test_app.household", "action": "I"},
    {"id": 7},
    {"id": uuid.uuid4(), "model": "test_app.household", "action": "I", "ts": None},
    {"id": uuid.uuid4(), "model": "test_app.household", "action": "I", "ts": "2026-03-01"},
    {"id": uuid.uuid4(), "model": "test_app.household", "action": "X", "ts": T0},
    {"id": uuid.uuid4(), "model": 5, "action": "I", "ts": T0},
    {"id": uuid.uuid4(), "model": "test_app.household", "action": "I", "ts": T0,
     "natural_key": ["HH-9"], "fields": [1, 2]},
    {"id": uuid.uuid4(), "model": "test_app.household", "action": "I", "ts": T0,
     "natural_key": "HH-9", "fields": {"code": "HH-9"}, "producer": 3},
]


def test_malformed_signed_records_fail_one_by_one_with_a_reason(world):
    """Never an internal error, a traceback or an endless retry: each record is
    ``failed`` with one line saying why; the good record beside them is applied."""
    good = household("HH-1", "v", ts=T0, producer="laptop-a/x")
    report = world("laptop-a", [*MALFORMED, good])
    assert (report.applied, report.failed) == (1, len(MALFORMED)), report.messages
    assert report.status == "applied"
    failed = IncomingTransaction.objects.using("server").filter(status=TxStatus.FAILED)
    assert failed.count() == len(MALFORMED)
    for row in failed:
        assert row.reason.startswith("not applied: ") and "\n" not in row.reason
    again = retry_failed(using="server")  # still failing, the same way, no crash
    assert (again.applied, again.failed) == (0, len(MALFORMED))
    assert m.Household.objects.using("server").get().code == "HH-1"


@pytest.mark.parametrize("fields,why", [
    ({"code": "HH-1", "village": "x" * 101}, "at most 100 characters"),
    ({"code": "HH-1", "village": "v", "colour": "red"}, "has no field 'colour'"),
    ({"code": None, "village": "v"}, "may not be empty"),
])
def test_values_are_checked_against_the_models_fields(world, fields, why):
    """Issue 10, item 6: what the site's forms would refuse is not stored (SQLite
    does not check lengths), and a field unknown here fails instead of being dropped."""
    record = household("HH-1", "v", ts=T0, producer="laptop-a/x")
    record["fields"] = fields
    report = world("laptop-a", [record])
    assert (report.applied, report.failed) == (0, 1)
    assert why in IncomingTransaction.objects.using("server").get().reason
    assert not m.Household.objects.using("server").exists()


def test_with_the_ownership_policy_a_site_changes_only_its_own_rows(world, settings):
    """The optional policy (BUNDLEKIT["APPLY_POLICY"]): laptop-a cannot delete the
    household laptop-b created; laptop-b can."""
    settings.BUNDLEKIT = {"APPLY_POLICY": "django_adapter.apply.OwnRowsOnly"}
    world("laptop-b", [household("HH-B", "v", ts=T0, producer="laptop-b/x")])
    gone = household("HH-B", "v", ts=T0 + dt.timedelta(minutes=1), producer="laptop-a/x")
    gone.update(action="D", fields={})
    refused = world("laptop-a", [gone])
    assert (refused.applied, refused.failed) == (0, 1)
    assert "created by another site's key" in refused.messages[0]
    assert m.Household.objects.using("server").filter(code="HH-B").exists()
    mine = dict(gone, id=uuid.uuid4(), producer="laptop-b/x", ts=T0 + dt.timedelta(minutes=2))
    assert world("laptop-b", [mine]).applied == 1
    assert not m.Household.objects.using("server").exists()


def test_a_value_a_database_refuses_fails_its_record_alone(world):
    """A signed record whose text holds a NUL byte (PostgreSQL refuses it, whether the
    window goes by COPY or INSERT): that record ends failed with its reason, the
    records around it in the same window are applied, nothing is left pending."""
    records = [household(f"H{i}", "ok" if i != 3 else "bad\x00village", ts=T0,
                         producer="laptop-a/pc") for i in range(6)]
    world("laptop-a", records)
    rows = {r.tx_id: r for r in IncomingTransaction.objects.using("server")}
    assert len(rows) == 6
    assert all(r.status in (TxStatus.APPLIED, TxStatus.FAILED) for r in rows.values())
    bad = rows[records[3]["id"]]
    assert bad.status == TxStatus.APPLIED or bad.reason  # SQLite and MariaDB keep NUL bytes
    if connections["server"].vendor == "postgresql":
        assert bad.status == TxStatus.FAILED
    clean = [rows[r["id"]] for i, r in enumerate(records) if i != 3]
    assert all(r.status == TxStatus.APPLIED for r in clean)
    assert sorted(m.Household.objects.using("server").values_list("code", flat=True)) == \
        sorted(f"H{i}" for i in range(6) if i != 3 or bad.status == TxStatus.APPLIED)
