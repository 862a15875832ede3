"""The entry-order workload: data entered form by form, the way a clinic does.

One *step* is one form action of a research assistant, and each is one ``save()``,
one M2M ``set()`` or one ``delete()`` on the clinic schema (bench/clinic), so on
the synced models each step is captured as exactly one transaction:

* the panel list once, at the start (6 saves);
* per participant: the consent; at each of 3 visits (enrolment, then 28 and 56
  days later) the visit, its vital signs, and 2 requisitions, each saved and
  then its panels set (one ``set()`` of 1-3 panels: an M2M update);
* corrections: 30% of vital signs edited again 1-14 days later, 10% of consents
  edited (a new phone number) within 120 days, 5% of requisitions deleted as
  entered in error within 2 days.

Participants enrol at an even pace over a year, and steps run in time order, so
one participant's visits are interleaved with other participants' enrolments
and follow-ups, as in the field: the same model rarely comes twice in a row.
Every value is drawn from a seeded ``random.Random``: the same arguments give the
same steps on the synced models and on their plain twins.

Requires Django to be set up (bench.settings).
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import random
import uuid
from decimal import Decimal

from bench.data import _FIRST, _LAST, _text

STEPS_PER_PARTICIPANT = 20  # 19 forms + ~1 correction, on average
VISITS = ("1000", "2000", "3000")
PANELS = (("cd4", "CD4"), ("vl", "Viral load"), ("fbc", "Full blood count"),
          ("chem", "Chemistry"), ("pbmc", "PBMC"), ("storage", "Storage"))
SPECIMENS = ("WB", "PL", "SR", "DBS")
REASONS = ("scheduled", "unscheduled", "missed")
SOURCES = ("participant", "telephone", "next of kin")
_EPOCH = dt.datetime(2024, 1, 8, 7, 30, tzinfo=dt.UTC)
_MIN = dt.timedelta(minutes=1)
_DAY = dt.timedelta(days=1)


class Entry:
    """Runs the workload on ``models`` (the clinic's SYNCED or PLAIN tuple)."""

    def __init__(self, models, *, seed: int, prefix: str, steps: int):
        self.panel_model, self.consent_model, self.visit_model, self.vitals_model, \
            self.req_model = models
        self.rng = random.Random(seed)
        self.prefix = prefix
        participants = max(1, steps // STEPS_PER_PARTICIPANT)
        self.spacing = max(_MIN, dt.timedelta(days=365) / participants)
        self.queue: list = []
        self.order = itertools.count()
        self.enrolled = 0
        self.panels: list = []
        self.counts = {"save": 0, "update": 0, "set": 0, "delete": 0}

    def at(self, when, fn, *args):
        heapq.heappush(self.queue, (when, next(self.order), fn, args))

    def steps(self):
        """Yield one callable per step, in entry order (endless)."""
        for code, name in PANELS:
            yield lambda code=code, name=name: self._panel(code, name)
        self.at(_EPOCH, self._enrol)
        while True:
            when, _, fn, args = heapq.heappop(self.queue)
            yield lambda fn=fn, when=when, args=args: fn(when, *args)

    # ----------------------------------------------------------- forms

    def _save(self, obj, kind="save"):
        obj.save()
        self.counts[kind] += 1

    def _panel(self, code, name):
        p = self.panel_model(name=code, display_name=name)
        self._save(p)
        self.panels.append(p)

    def _enrol(self, when):
        rng, i = self.rng, self.enrolled
        self.enrolled += 1
        self.at(when + self.spacing, self._enrol)
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        consent = self.consent_model(
            id=uuid.UUID(int=rng.getrandbits(128), version=4),
            subject_identifier=f"{self.prefix}-{i:07d}",
            first_name=first, last_name=last, initials=(first[0] + last[0]).upper(),
            dob=dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20000)),
            gender=rng.choice("FM"), identity=f"{rng.randrange(10**9):09d}",
            consent_datetime=when.replace(microsecond=rng.randrange(10**6)),
            address=f"Plot {rng.randrange(1, 9999)}, ward {rng.randrange(1, 40)}, " + _text(rng, 6),
            phone=f"+267 7{rng.randrange(10**7):07d}",
        )
        self._save(consent)
        self.at(when + 10 * _MIN, self._visit, consent, 0)
        if rng.random() < 0.10:
            self.at(when + rng.randrange(1, 120) * _DAY, self._new_phone, consent)

    def _new_phone(self, when, consent):
        consent.phone = f"+267 7{self.rng.randrange(10**7):07d}"
        self._save(consent, "update")

    def _visit(self, when, consent, v):
        rng = self.rng
        visit = self.visit_model(
            subject_consent=consent, subject_identifier=consent.subject_identifier,
            visit_code=VISITS[v], visit_code_sequence=0,
            report_datetime=when + dt.timedelta(seconds=rng.randrange(600)),
            reason=rng.choice(REASONS), info_source=rng.choice(SOURCES), comments=_text(rng, 30),
        )
        self._save(visit)
        self.at(when + 5 * _MIN, self._vitals, visit)
        for k in range(2):
            self.at(when + (10 + 2 * k) * _MIN, self._requisition, visit, k)
        if v + 1 < len(VISITS):
            self.at(when + 28 * _DAY + rng.randrange(-3, 4) * _DAY, self._visit, consent, v + 1)

    def _vitals(self, when, visit):
        rng = self.rng
        vitals = self.vitals_model(
            subject_visit=visit, report_datetime=when,
            weight=Decimal(rng.randrange(400, 1100)) / 10,
            height=Decimal(rng.randrange(1400, 1950)) / 10 if rng.random() > 0.1 else None,
            sys_blood_pressure=rng.randrange(95, 170), dia_blood_pressure=rng.randrange(55, 105),
            heart_rate=rng.randrange(50, 110),
            temperature=Decimal(rng.randrange(355, 395)) / 10 if rng.random() > 0.2 else None,
            comments=_text(rng, 12),
        )
        self._save(vitals)
        if rng.random() < 0.30:
            self.at(when + rng.randrange(1, 15) * _DAY, self._correct_vitals, vitals)

    def _correct_vitals(self, when, vitals):
        vitals.weight = Decimal(self.rng.randrange(400, 1100)) / 10
        vitals.comments = "corrected: " + _text(self.rng, 8)
        self._save(vitals, "update")

    def _requisition(self, when, visit, k):
        rng = self.rng
        req = self.req_model(
            id=uuid.UUID(int=rng.getrandbits(128), version=4),
            subject_visit=visit,
            requisition_identifier=f"{visit.subject_identifier}-{visit.visit_code}-{k}",
            specimen_type=rng.choice(SPECIMENS),
            volume=Decimal(rng.randrange(50, 1000)) / 100,
            drawn_datetime=when + dt.timedelta(seconds=rng.randrange(3600)),
            is_drawn=rng.random() > 0.05, item_count=rng.randint(1, 3), comments=_text(rng, 20),
        )
        self._save(req)
        self.at(when + _MIN, self._set_panels, req)

    def _set_panels(self, when, req):
        rng = self.rng
        req.panels.set(rng.sample(self.panels, rng.randint(1, 3)))
        self.counts["set"] += 1
        if rng.random() < 0.05:
            self.at(when + rng.randrange(1, 48) * 60 * _MIN, self._delete, req)

    def _delete(self, when, req):
        req.delete()
        self.counts["delete"] += 1


def enter(steps: int, *, models, seed: int, prefix: str, batch: int = 1000) -> dict:
    """Run ``steps`` steps, ``batch`` steps per database transaction; the counts
    of saves, updates, M2M sets and deletes done."""
    from django.db import transaction

    entry = Entry(models, seed=seed, prefix=prefix, steps=steps)
    todo = entry.steps()
    done = 0
    while done < steps:
        with transaction.atomic():
            for step in itertools.islice(todo, min(batch, steps - done)):
                step()
                done += 1
    return {"steps": done, "participants": entry.enrolled, **entry.counts}
