"""List the specimen requisitions this database holds (the driver and the lab
assistant reconcile them against the tubes in the cool box).

``--json`` prints counts and natural keys instead, for scripts (the demo checks
that the server holds exactly what the laptops hold).
"""

import hashlib
import json

from django.core.management.base import BaseCommand
from django.utils import timezone

from clinic.models import Participant, SpecimenRequisition, Visit


def photo_sha256(r) -> str:
    """SHA-256 of the label photo's bytes in this machine's storage ("-": none)."""
    if not r.label_photo:
        return "-"
    try:
        with r.label_photo.open("rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return "missing"


def photo_text(r) -> str:
    digest = photo_sha256(r)
    if len(digest) != 64:
        return digest
    return f"{r.label_photo.name} ({r.label_photo.size:,} bytes, sha256 {digest[:12]})"


class Command(BaseCommand):
    help = "List specimen requisitions (or, with --json, counts and keys of every clinic row)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Machine-readable summary.")

    def handle(self, *args, **options):
        requisitions = SpecimenRequisition.objects.select_related("visit__participant")
        if options["json"]:
            summary = {
                "participants": sorted(
                    f"{p.subject_identifier}:{p.initials}" for p in Participant.objects.all()
                ),
                "visits": sorted(
                    f"{v.participant.subject_identifier}:{v.visit_code}"
                    for v in Visit.objects.select_related("participant")
                ),
                # With the SHA-256 of the label photo this database's storage holds:
                # the same everywhere means the photo arrived byte for byte.
                "requisitions": sorted(
                    f"{r.requisition_identifier}:{r.specimen_type}:{r.volume}:{photo_sha256(r)}"
                    for r in requisitions
                ),
            }
            self.stdout.write(json.dumps(summary, indent=2))
            return
        if not requisitions:
            self.stdout.write("no specimen requisitions")
            return
        for r in requisitions:
            local = timezone.localtime(r.drawn_datetime)
            self.stdout.write(
                f"{r.requisition_identifier}  {r.visit.participant.subject_identifier}  "
                f"visit {r.visit.visit_code}  {r.get_specimen_type_display():<16} "
                f"{r.volume:>5} mL  drawn {local:%H:%M}  label photo {photo_text(r)}"
            )
