"""Child process of the crash test: import a bundle and freeze half-way through.

Usage: python -m tests.django_adapter.crash_child BUNDLE KEY MARKER FREEZE_AFTER
The parent passes its test database names in BUNDLEKIT_TEST_DB_NAMES.
"""

import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.test_project.settings")
django.setup()

from django.db.models.signals import post_save  # noqa: E402

from bundlekit.keys import load_identity  # noqa: E402
from django_adapter.importer import import_bundle  # noqa: E402
from tests.test_app.models import Household  # noqa: E402


def main(bundle, key, marker, freeze_after):
    saves = 0

    def freeze(sender, instance, **kwargs):
        nonlocal saves
        saves += 1
        if saves == freeze_after:
            # Written aside, then renamed: the parent polls for the marker and must
            # never read it half-written.
            with open(marker + ".tmp", "w") as f:
                f.write(str(saves))
            os.replace(marker + ".tmp", marker)
            time.sleep(600)  # the parent kills us here, mid-bundle

    post_save.connect(freeze, sender=Household, weak=False)
    import_bundle(bundle, identities=[load_identity(key)], using="server")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
