"""Settings for every machine in the field story; the role comes from the environment.

    FIELD_ROLE   laptop-a | laptop-b | middleman | server   (default: laptop-a)
    FIELD_HOME   this machine's data folder: keys/, db.sqlite3, outbox/, inbox/,
                 receipts-out/, to-server/ (default: ./<role>, so four
                 machines can be played side by side in one folder)

Each machine keeps its own secret key in FIELD_HOME/keys/<role>.key and the public
keys (.pub) of the machines it writes to or trusts in the same folder. Run
``bundle keygen <role> --dir $FIELD_HOME/keys`` once per machine, then copy the
.pub files around (they are not secret).
"""

import os
from pathlib import Path

ROLES = ("laptop-a", "laptop-b", "middleman", "server")

ROLE = os.environ.get("FIELD_ROLE", "laptop-a")
if ROLE not in ROLES:
    raise RuntimeError(f"FIELD_ROLE={ROLE!r}: expected one of {', '.join(ROLES)}")
HOME = Path(os.environ.get("FIELD_HOME") or Path.cwd() / ROLE).resolve()
KEYS = HOME / "keys"
HOME.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not the folder

SECRET_KEY = "field-example-not-secret"  # an example project; never deploy this value
DEBUG = False
ALLOWED_HOSTS: list[str] = []
USE_TZ = True
TIME_ZONE = "Africa/Gaborone"  # data is entered in local time and stored in UTC
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_adapter",
    "clinic",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(HOME / "db.sqlite3"),
    }
}

# Who this machine is, whom it writes to and whom it believes. Every key has one role:
#   laptops write to the server and to the middleman (the driver's laptop reads
#   bundles to reconcile specimens); the middleman and the server import the two
#   laptops' bundles (TRUSTED); only the server's receipts may let a laptop delete
#   what it sent (RECEIPTS_FROM): never a peer laptop's, never the middleman's.
BUNDLEKIT = {
    "SITE": ROLE,
    "IDENTITY": str(KEYS / f"{ROLE}.key"),
    "RECIPIENTS": [str(KEYS / "server.pub"), str(KEYS / "middleman.pub")],
    "TRUSTED": [str(KEYS / "laptop-a.pub"), str(KEYS / "laptop-b.pub")],
    "RECEIPTS_FROM": [str(KEYS / "server.pub")],
    "REVOKED": [],
    "OUTBOX": str(HOME / "outbox"),  # bundles sealed here first, then copied to the stick
    "INBOX": str(HOME / "inbox"),  # the folder `bundle watch` takes bundles from
    # The server writes a signed receipt per laptop here after importing; the
    # middleman reads bundles but issues no receipts (the laptops do not trust it to).
    "RECEIPTS_OUT": str(HOME / "receipts-out") if ROLE == "server" else None,
    # The middleman passes the original files on, untouched, to this folder (the
    # driver's stick for the server) as it imports them; the others forward nothing.
    "FORWARD": str(HOME / "to-server") if ROLE == "middleman" else None,
    "MAX_BYTES": 1 << 30,
    "DATABASE": "default",
    # Files of file fields (the label photos): copies kept until the server confirms
    # them (laptops), files received (server, middleman).
    "ATTACHMENTS": str(HOME / "attachments"),
}
MEDIA_ROOT = str(HOME / "media")  # where each machine's FileField storage keeps the photos

# The server also takes bundles over HTTP (docs/REST.md): `python manage.py runserver`
# here, `bundle push http://127.0.0.1:8000/bundles/ laptop-a/outbox` on a laptop.
if ROLE == "server":
    ROOT_URLCONF = "fieldproject.urls"
    ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    BUNDLEKIT["REST"] = {
        # Laptops send it as BUNDLEKIT_TOKEN. The default is for the demo only: set
        # BUNDLEKIT_REST_TOKEN to a long random string anywhere else, and serve over HTTPS.
        "TOKENS": [os.environ.get("BUNDLEKIT_REST_TOKEN", "field-demo-token")],
        "IMPORT_ON_UPLOAD": True,  # import as the upload completes; the receipt is ready at once
        "UPLOAD_DIR": str(HOME / "uploads"),  # partial uploads, beside the inbox
    }
    # The data manager's pages (docs/WORKFLOW.md) at /sync/: Django's own users,
    # sessions and templates. `python manage.py createsuperuser` makes the first
    # account; others get the permissions django_adapter.view_dashboard (look)
    # and django_adapter.act_on_dashboard (retry, resolve, upload) in the admin.
    INSTALLED_APPS += ["django.contrib.sessions"]
    MIDDLEWARE = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ]
    TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                ]
            },
        }
    ]
    BUNDLEKIT["DASHBOARD"] = {"QUIET_DAYS": 7}  # highlight a laptop not heard from for a week
