"""What a research assistant types into one field laptop during a shift.

``python manage.py enter_field_data`` enters this laptop's participants, their
first visit and the specimens drawn (requisitioned and labelled in the field),
then corrects one record and deletes one entered twice by mistake: inserts,
updates and deletes, each captured as an outgoing transaction.

``--late-specimen`` adds one more requisition to a laptop that already holds its
shift: a tube drawn later (the demo sends it over HTTP instead of a stick).

``--correct-identifier`` corrects a subject identifier typed wrong: the
participant's natural key changes (a rename), and its visits, whose natural key
includes it, follow.

``--misread-identifier`` (laptop-b) enrols one more participant under a subject
identifier misread from the label, one that laptop-a already used: the server
refuses it (unique clash) and says why.  ``--fix-misread`` then corrects it, as
the research assistant would after reading ``bundle status``.
"""

import hashlib
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from clinic.models import Participant, SpecimenRequisition, Visit
from django_adapter.models import OutgoingTransaction


def label_photo(identifier: str) -> ContentFile:
    """The photo of a tube's label the research assistant takes (a stand-in JPEG:
    24 KiB of bytes that, like a real photo, do not compress)."""
    body = b"".join(hashlib.sha256(f"{identifier}/{i}".encode()).digest() for i in range(768))
    return ContentFile(b"\xff\xd8\xff\xe0" + body + b"\xff\xd9", name=f"{identifier}.jpg")


# (subject identifier, initials, date of birth, gender, [(specimen type, volume mL), ...])
SHIFTS = {
    "laptop-a": {
        "prefix": "RA",
        "participants": [
            ("066-11100001-3", "KM", date(1988, 3, 14), "F", [("WB", "4.00"), ("PL", "2.50")]),
            ("066-11100002-1", "TB", date(1975, 11, 2), "M", [("WB", "4.00")]),
            ("066-11100003-9", "OL", date(1993, 6, 21), "F", [("SR", "3.00"), ("DBS", "0.25")]),
        ],
        "correct_initials": ("066-11100003-9", "OLM"),
        "late": ("066-11100002-1", "RA0007", "PL", "2.00"),
        "wrong_identifier": ("066-11100001-3", "066-11100001-4"),
    },
    "laptop-b": {
        "prefix": "RB",
        "participants": [
            ("066-22200001-7", "NM", date(1990, 1, 30), "F", [("WB", "4.00"), ("PL", "2.00")]),
            ("066-22200002-5", "GS", date(1969, 8, 9), "M", [("DBS", "0.25")]),
        ],
        "correct_initials": ("066-22200002-5", "GSK"),
        "late": ("066-22200002-5", "RB0005", "SR", "3.00"),
        "wrong_identifier": ("066-22200001-7", "066-22200001-8"),
        # (identifier as misread, as on the label, initials, date of birth, gender)
        "misread": ("066-11100001-3", "066-22200003-2", "PM", date(1984, 4, 4), "F"),
    },
}


class Command(BaseCommand):
    help = "Enter a field shift's participants, visits and specimen requisitions."

    def add_arguments(self, parser):
        parser.add_argument(
            "--late-specimen",
            action="store_true",
            help="After the shift: requisition one more specimen (a tube drawn later).",
        )
        parser.add_argument(
            "--correct-identifier",
            action="store_true",
            help="After the shift: correct a subject identifier that was typed wrong.",
        )
        parser.add_argument(
            "--misread-identifier",
            action="store_true",
            help="Enrol one more participant under a misread subject identifier.",
        )
        parser.add_argument(
            "--fix-misread",
            action="store_true",
            help="Correct the misread subject identifier.",
        )

    def handle(self, *args, **options):
        role = settings.BUNDLEKIT["SITE"]
        shift = SHIFTS.get(role)
        if shift is None:
            raise CommandError(f"{role} is not a field laptop; nobody enters data here")
        if options["late_specimen"]:
            self.late_specimen(*shift["late"])
            return
        if options["correct_identifier"]:
            self.correct_identifier(*shift["wrong_identifier"])
            return
        if options["misread_identifier"] or options["fix_misread"]:
            if "misread" not in shift:
                raise CommandError(f"{role} has no misread identifier in this story")
            if options["misread_identifier"]:
                self.misread(*shift["misread"])
            else:
                self.correct(*shift["misread"][:2])
            return
        if Participant.objects.exists():
            raise CommandError("this laptop already holds a shift's data")
        now = timezone.now().replace(microsecond=123456)
        number = 0
        with transaction.atomic():
            for i, (subject, initials, dob, gender, specimens) in enumerate(shift["participants"]):
                consented = now - timedelta(hours=5, minutes=40 - 7 * i)
                participant = Participant.objects.create(
                    subject_identifier=subject,
                    initials=initials,
                    dob=dob,
                    gender=gender,
                    consent_datetime=consented,
                )
                visit = Visit.objects.create(
                    participant=participant,
                    visit_code="1000",
                    report_datetime=consented + timedelta(minutes=12),
                )
                for specimen_type, volume in specimens:
                    number += 1
                    identifier = f"{shift['prefix']}{number:04d}"
                    SpecimenRequisition.objects.create(
                        visit=visit,
                        requisition_identifier=identifier,
                        specimen_type=specimen_type,
                        volume=Decimal(volume),
                        drawn_datetime=consented + timedelta(minutes=20 + number),
                        label_photo=label_photo(identifier),
                    )
                self.stdout.write(
                    f"entered {subject} ({initials}), visit 1000, "
                    f"{len(specimens)} specimen(s) requisitioned"
                )

            subject, initials = shift["correct_initials"]
            participant = Participant.objects.get(subject_identifier=subject)
            old, participant.initials = participant.initials, initials
            participant.save()
            self.stdout.write(f"corrected initials of {subject}: {old} -> {initials}")

            visit = Visit.objects.get(participant=participant, visit_code="1000")
            number += 1
            twice = SpecimenRequisition.objects.create(
                visit=visit,
                requisition_identifier=f"{shift['prefix']}{number:04d}",
                specimen_type="WB",
                volume=Decimal("4.00"),
                drawn_datetime=now,
            )
            twice.delete()
            self.stdout.write(
                f"deleted requisition {twice.requisition_identifier} (entered twice by mistake)"
            )
        pending = OutgoingTransaction.objects.filter(exported=False).count()
        self.stdout.write(f"{pending} changes waiting to leave this laptop")

    def misread(self, misread, _label, initials, dob, gender):
        Participant.objects.create(
            subject_identifier=misread,
            initials=initials,
            dob=dob,
            gender=gender,
            consent_datetime=timezone.now().replace(microsecond=123456),
        )
        self.stdout.write(f"entered {misread} ({initials})")

    def correct(self, misread, label):
        try:
            participant = Participant.objects.get(subject_identifier=misread)
        except Participant.DoesNotExist:
            raise CommandError(f"no participant {misread} on this laptop") from None
        participant.subject_identifier = label
        participant.save()
        self.stdout.write(f"corrected subject identifier {misread} -> {label}")

    def late_specimen(self, subject, identifier, specimen_type, volume):
        if SpecimenRequisition.objects.filter(requisition_identifier=identifier).exists():
            raise CommandError(f"{identifier} is already requisitioned")
        try:
            visit = Visit.objects.get(participant__subject_identifier=subject, visit_code="1000")
        except Visit.DoesNotExist:
            raise CommandError("enter the shift first (without --late-specimen)") from None
        SpecimenRequisition.objects.create(
            visit=visit,
            requisition_identifier=identifier,
            specimen_type=specimen_type,
            volume=Decimal(volume),
            drawn_datetime=timezone.now().replace(microsecond=123456),
            label_photo=label_photo(identifier),
        )
        self.stdout.write(f"entered {identifier} ({specimen_type}, {volume} mL) for {subject}")
        pending = OutgoingTransaction.objects.filter(exported=False).count()
        self.stdout.write(f"{pending} change(s) waiting to leave this laptop")

    def correct_identifier(self, wrong, right):
        participant = Participant.objects.filter(subject_identifier__in=[wrong, right]).first()
        if participant is None:
            raise CommandError("enter the shift first (without --correct-identifier)")
        if participant.subject_identifier == right:
            self.stdout.write(f"{right} is already corrected")
            return
        participant.subject_identifier = right
        participant.save()
        self.stdout.write(f"corrected subject identifier {wrong} -> {right}")
        pending = OutgoingTransaction.objects.filter(exported=False).count()
        self.stdout.write(f"{pending} change(s) waiting to leave this laptop")
