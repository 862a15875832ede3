"""The benchmark data set: deterministic, generated, never downloaded.

One *family* is what a field visit schedule produces for one participant: the
participant, 3 visits and 2 specimen requisitions per visit, 10 objects, each
one insert transaction.  Text fields have realistic lengths (names, an address,
free-text comments of 0-200 characters), decimals, aware datetimes and UUIDs.

Requires Django to be set up (bench.settings) because instances are models.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from decimal import Decimal

OBJECTS_PER_FAMILY = 10
VISITS = ("1000", "2000", "3000")
PANELS = ("CD4", "Viral load", "FBC", "Chemistry", "PBMC", "Storage")
SPECIMENS = ("WB", "PL", "SR", "DBS")
REASONS = ("scheduled", "unscheduled", "missed")
SOURCES = ("participant", "telephone", "next of kin")
_WORDS = (
    "patient reports mild headache since last visit no fever appetite good adherence "
    "counselling given referred to clinic for review sample collected without problems "
    "tube labelled and stored cold chain maintained transport delayed by rain road "
    "participant asked about results will call back next week partner also tested"
).split()
_FIRST = ("Kagiso", "Naledi", "Thabo", "Mpho", "Lesego", "Boitumelo", "Kabelo", "Onalenna")
_LAST = ("Mogale", "Dikgang", "Seretse", "Molefe", "Kgosi", "Tau", "Modise", "Phiri")
_EPOCH = dt.datetime(2024, 1, 8, 7, 30, tzinfo=dt.UTC)


def _text(rng: random.Random, max_words: int) -> str:
    return " ".join(rng.choices(_WORDS, k=rng.randint(0, max_words)))


def families(count: int, *, seed: int, prefix: str, models, visit_ids: bool = False):
    """Yield ``count`` families as unsaved instances: (participant, visits, requisitions).

    ``models`` is (Participant, Visit, Requisition) or their plain twins.
    ``visit_ids`` gives visits an id (for records built without a database).
    """
    participant_model, visit_model, requisition_model = models
    rng = random.Random(seed)
    visit_id = 0
    for i in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        consent = _EPOCH + dt.timedelta(minutes=17 * i, microseconds=rng.randrange(10**6))
        p = participant_model(
            id=uuid.UUID(int=rng.getrandbits(128), version=4),
            subject_identifier=f"{prefix}-{i:08d}",
            first_name=first,
            last_name=last,
            initials=(first[0] + last[0]).upper(),
            dob=dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20000)),
            gender=rng.choice("FM"),
            identity=f"{rng.randrange(10**9):09d}",
            consent_datetime=consent,
            address=f"Plot {rng.randrange(1, 9999)}, ward {rng.randrange(1, 40)}, " + _text(rng, 6),
            phone=f"+267 7{rng.randrange(10**7):07d}",
        )
        visits, requisitions = [], []
        for v, code in enumerate(VISITS):
            report = consent + dt.timedelta(days=28 * v, seconds=rng.randrange(3600))
            visit = visit_model(
                participant=p,
                visit_code=code,
                visit_code_sequence=0,
                report_datetime=report,
                reason=rng.choice(REASONS),
                info_source=rng.choice(SOURCES),
                comments=_text(rng, 30),
            )
            if visit_ids:
                visit_id += 1
                visit.id = visit_id
            visits.append(visit)
            for r in range(2):
                requisitions.append(
                    requisition_model(
                        id=uuid.UUID(int=rng.getrandbits(128), version=4),
                        visit=visit,
                        requisition_identifier=f"{prefix}-{i:08d}-{code}-{r}",
                        panel_name=rng.choice(PANELS),
                        specimen_type=rng.choice(SPECIMENS),
                        volume=Decimal(rng.randrange(50, 1000)) / 100,
                        estimated_volume=Decimal(rng.randrange(50, 1000)) / 100,
                        drawn_datetime=report + dt.timedelta(minutes=rng.randrange(5, 90)),
                        is_drawn=rng.random() > 0.05,
                        item_count=rng.randint(1, 3),
                        comments=_text(rng, 30),
                    )
                )
        yield p, visits, requisitions


def in_capture_order(family):
    """The family's objects in the order a person enters them."""
    p, visits, requisitions = family
    yield p
    for k, visit in enumerate(visits):
        yield visit
        yield from requisitions[2 * k : 2 * k + 2]


def records(count: int, *, seed: int, prefix: str, producer: str):
    """``count`` (a multiple of 10) insert records built by the adapter's own
    ``to_record``, without a database, with increasing capture timestamps."""
    from bench.benchapp.models import SYNCED
    from django_adapter.serialization import to_record

    rng = random.Random(seed + 1)
    n = 0
    for fam in families(count // OBJECTS_PER_FAMILY, seed=seed, prefix=prefix, models=SYNCED,
                        visit_ids=True):
        for obj in in_capture_order(fam):
            n += 1
            yield to_record(
                obj, "I",
                tx_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                ts=_EPOCH + dt.timedelta(seconds=n),
                producer=producer, using="default",
            )
