"""List the specimen requisitions this database holds (the driver and the lab
assistant reconcile them against the tubes in the cool box).

``--json`` prints counts and natural keys instead, for scripts (the demo checks
that the server holds exactly what the laptops hold).
"""

import json

from django.core.management.base import BaseCommand
from django.utils import timezone

from clinic.models import Participant, SpecimenRequisition, Visit


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
                "requisitions": sorted(
                    f"{r.requisition_identifier}:{r.specimen_type}:{r.volume}" for r in requisitions
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
                f"{r.volume:>5} mL  drawn {local:%H:%M}"
            )
