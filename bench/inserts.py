"""Which way of inserting a window's new rows costs least, on the database named by
``BK_BENCH_DB`` (see bench/settings.py): the apply engine's choices in
django_adapter/apply/writes.py (``_PLAIN_VALUES``) and ledger.py (``write_new``)
come from this comparison.

    BK_BENCH_DB=mysql:somedb python -m bench.inserts      # a migrated database

Each way inserts the same 2,000 consents (and 2,000 ledger rows) inside a
transaction that is rolled back; CPU time of this process (the database server's
own work is not in it), best of 6.  Prints one JSON line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402

from bench.clinic.models import SubjectConsent  # noqa: E402
from django_adapter.apply import ledger, writes  # noqa: E402
from django_adapter.apply.plan import ModelPlan  # noqa: E402
from django_adapter.codec import packb  # noqa: E402
from django_adapter.models import IncomingTransaction  # noqa: E402

N, REPS = 2_000, 6


def consents():
    now = dt.datetime.now(dt.UTC)
    return [SubjectConsent(id=uuid.uuid4(), subject_identifier=f"S{uuid.uuid4().hex[:12]}",
                           first_name="ANNA", last_name="BOND", initials="AB", gender="F",
                           identity=uuid.uuid4().hex[:12], phone="123", consent_datetime=now,
                           dob=dt.date(1990, 1, 1)) for _ in range(N)]


def ledger_rows():
    now = dt.datetime.now(dt.UTC)
    rows = []
    for i in range(N):
        record = {"id": uuid.uuid4(), "model": "clinic.subjectconsent", "action": "I",
                  "ts": now, "producer": "bench", "pk": uuid.uuid4(), "fields": {"x": i}}
        rows.append(ledger.ledger_row(record, None, i, sender="bench"))
    return rows


def best(insert, make) -> float:
    times = []
    for _ in range(REPS):
        with transaction.atomic():
            objs = make()
            t = time.process_time()
            insert(objs)
            times.append(time.process_time() - t)
            transaction.set_rollback(True)
    return min(times) / N * 1e6


def main() -> None:
    plan = ModelPlan("clinic.subjectconsent")
    out = {"vendor": connection.vendor, "unit": "µs of CPU per row"}
    saved = writes._PLAIN_VALUES, writes.USE_COPY
    try:
        writes.USE_COPY = False
        writes._PLAIN_VALUES = ()
        out["objects_django_compiler"] = best(lambda o: writes.insert(plan, o, "default"), consents)
        writes._PLAIN_VALUES = (connection.vendor,)
        out["objects_values_prep"] = best(lambda o: writes.insert(plan, o, "default"), consents)
        if connection.vendor == "postgresql":
            writes.USE_COPY = True
            out["objects_copy"] = best(lambda o: writes.insert(plan, o, "default"), consents)
    finally:
        writes._PLAIN_VALUES, writes.USE_COPY = saved
    out["ledger_bulk_create"] = best(
        lambda rows: IncomingTransaction.objects.bulk_create(rows), ledger_rows)
    out["ledger_write_new"] = best(lambda rows: ledger.write_new(rows, "default"), ledger_rows)
    if connection.vendor == "postgresql":  # the INSERT it would use without COPY
        out["ledger_insert_unnest"] = best(
            lambda rows: ledger.write_new(rows, "default", use_copy=False), ledger_rows)
    print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    assert packb  # the rows above are packed as the engine packs them
    main()
