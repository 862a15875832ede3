"""The REST endpoints in-process (Django's test client), on every database backend:
the inbox mode, the resume protocol's edges, auth and errors as JSON."""

import hashlib
import os

import pytest
from django.urls import include, path

from bundlekit.keys import Identity, pub_file_text, write_keypair
from bundlekit.writer import ChainLink, seal
from django_adapter.exporter import export_pending
from django_adapter.importer import import_bundle
from tests.test_app import models as m

pytestmark = [pytest.mark.django_db(databases=["default"]), pytest.mark.urls(__name__)]

urlpatterns = [path("bundles/", include("django_adapter.urls"))]

TOKEN = "tok-123"


@pytest.fixture
def setup(tmp_path, settings):
    central, site = Identity.generate("central"), Identity.generate("site-a")
    (tmp_path / "keys").mkdir()
    key, _ = write_keypair(central, tmp_path / "keys")
    pub = tmp_path / "keys" / "site-a.pub"
    pub.write_text(pub_file_text(site.public))
    settings.BUNDLEKIT = {
        "SITE": "central",
        "IDENTITY": str(key),
        "TRUSTED": [str(pub)],
        "INBOX": str(tmp_path / "inbox"),
        "OUTBOX": str(tmp_path / "outbox"),
        "RECEIPTS_OUT": None,
        "REST": {"TOKENS": [TOKEN], "IMPORT_ON_UPLOAD": False, "MAX_UPLOAD_BYTES": 1 << 20,
                 "UPLOAD_DIR": str(tmp_path / "uploads")},
    }
    return dict(central=central, site=site, tmp=tmp_path, settings=settings)


def auth(**extra):
    return {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}", **extra}


def sha(data):
    return hashlib.sha256(data).hexdigest()


def put(client, data, *, content_range=None, upload_id=None, **headers):
    extra = auth(**headers)
    if content_range:
        extra["HTTP_CONTENT_RANGE"] = content_range
    return client.put(f"/bundles/uploads/{upload_id or sha(data)}", data=data,
                      content_type="application/octet-stream", **extra)


def a_bundle(setup, n=3, prefix="HH"):
    for i in range(n):
        m.Household.objects.create(code=f"{prefix}-{i}")
    (b,) = export_pending(setup["tmp"] / "laptop", identity=setup["site"],
                          recipients=[setup["central"].public])
    return setup["tmp"] / "laptop" / b.file_name


def test_inbox_mode_queues_for_the_watcher_and_dedupes(client, setup):
    bundle = a_bundle(setup)
    data = bundle.read_bytes()
    r = put(client, data)  # the whole file in one request, as `curl -T` sends it
    assert r.status_code == 201, r.json()
    assert r.json()["status"] == "queued" and r.json()["file_name"] == bundle.name
    queued = setup["tmp"] / "inbox" / bundle.name
    assert queued.read_bytes() == data
    again = put(client, data)
    assert (again.status_code, again.json()["status"]) == (200, "already held")

    # The watcher imports it; then a fork of seq 1 is a conflict, even in inbox mode.
    import_bundle(queued, identities=[setup["central"]], trusted=[setup["site"].public], using="default")
    (setup["tmp"] / "restored").mkdir()
    (fork,) = seal([{"id": 1}], identity=setup["site"], recipients=[setup["central"].public],
                   out_dir=setup["tmp"] / "restored", after=ChainLink(0, None))
    fork_data = open(fork.path, "rb").read()
    r = put(client, fork_data)
    assert r.status_code == 409 and r.json()["error"] == "fork"
    assert not (setup["tmp"] / "inbox" / os.path.basename(fork.path)).exists()


def test_resume_protocol_edges(client, setup):
    data = a_bundle(setup).read_bytes()
    size, uid = len(data), sha(data)
    url = f"/bundles/uploads/{uid}"
    assert client.get(url, **auth()).status_code == 404
    r = put(client, b"", content_range=f"bytes */{size}", upload_id=uid)
    assert (r.status_code, r["Upload-Offset"], r["Upload-Length"]) == (202, "0", str(size))
    r = put(client, data[:100], content_range=f"bytes 0-99/{size}", upload_id=uid)
    assert (r.status_code, r["Upload-Offset"]) == (202, "100")
    # A chunk that does not start at the server's offset is refused, nothing written twice.
    r = put(client, data[50:150], content_range=f"bytes 50-149/{size}", upload_id=uid)
    assert (r.status_code, r.json()["error"], r["Upload-Offset"]) == (416, "offset-mismatch", "100")
    assert client.head(url, **auth())["Upload-Offset"] == "100"
    state = client.get(url, **auth()).json()
    assert (state["offset"], state["received"], state["complete"]) == (100, 100, False)
    # Another length for the same id, a range that lies, a bad id.
    assert put(client, b"", content_range=f"bytes */{size + 1}", upload_id=uid).status_code == 409
    assert put(client, data[100:110], content_range=f"bytes 100-120/{size}", upload_id=uid).status_code == 400
    assert put(client, b"x", content_range="bytes=0-0/1", upload_id=uid).status_code == 400
    assert client.get("/bundles/uploads/..%2F..", **auth()).status_code == 404
    r = put(client, data[100:], content_range=f"bytes 100-{size - 1}/{size}", upload_id=uid)
    assert r.status_code == 201 and r.json()["upload"]["received"] == size
    # Bytes that do not hash to the id are refused and dropped.
    other = bytearray(data)
    other[-200] ^= 1
    r = put(client, bytes(other), upload_id=sha(data[:10] + b"x"))
    assert (r.status_code, r.json()["error"]) == (422, "digest-mismatch")
    assert client.delete(url, **auth()).status_code == 204


def test_garbage_is_refused_after_the_first_chunk(client, setup):
    junk = os.urandom(4000)
    r = put(client, junk[:1000], content_range="bytes 0-999/4000", upload_id=sha(junk))
    assert (r.status_code, r.json()["error"]) == (422, "not-a-bundle")
    assert not list((setup["tmp"] / "uploads" / sha(junk)).glob("upload.*"))


def test_no_trusted_senders_means_nothing_is_accepted(client, setup):
    setup["settings"].BUNDLEKIT = {**setup["settings"].BUNDLEKIT, "TRUSTED": []}
    r = put(client, a_bundle(setup).read_bytes())
    assert (r.status_code, r.json()["error"]) == (403, "no-trusted-senders")


def test_auth_methods_and_errors_are_json(client, setup):
    for url in ("/bundles/", "/bundles/outbox/", "/bundles/receipts/", "/bundles/nope"):
        r = client.get(url)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        assert r["WWW-Authenticate"] == 'Bearer realm="bundlekit"'
    assert client.get("/bundles/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x").status_code == 401
    assert client.get("/bundles/", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    index = client.get("/bundles/", **auth()).json()
    assert index["service"] == "bundlekit" and index["import_on_upload"] is False
    r = client.post("/bundles/outbox/", **auth())
    assert (r.status_code, r.json()["error"]) == (405, "method-not-allowed")
    r = client.get("/bundles/receipts/", **auth())
    assert (r.status_code, r.json()["error"]) == (404, "not-configured")
    assert client.get("/bundles/outbox/", **auth()).json() == {"bundles": []}
    r = client.get("/bundles/outbox/site-a-00000001-00000000.bundle", **auth())
    assert (r.status_code, r.json()["error"]) == (404, "no-such-file")


def test_without_tokens_the_api_is_open_but_uploads_are_still_verified(client, setup):
    raw = dict(setup["settings"].BUNDLEKIT)
    raw["REST"] = {**raw["REST"], "TOKENS": []}
    setup["settings"].BUNDLEKIT = raw
    assert client.get("/bundles/outbox/").status_code == 200
    stranger = Identity.generate("stranger")
    (setup["tmp"] / "s").mkdir()
    (b,) = seal([{"id": 1}], identity=stranger, recipients=[setup["central"].public],
                out_dir=setup["tmp"] / "s", after=ChainLink(0, None))
    data = open(b.path, "rb").read()
    r = client.put(f"/bundles/uploads/{sha(data)}", data=data, content_type="application/octet-stream")
    assert (r.status_code, r.json()["error"]) == (403, "unknown-sender")


@pytest.mark.attack
def test_a_configuration_error_keeps_the_upload_and_says_retry_will_not_help(client, setup):
    """Issue 10: REVOKED naming a missing file is the server's fault, not the file's:
    the verified bytes are kept, the answer is JSON ("retry": false), and once
    the settings are fixed the same upload finishes without sending it again."""
    good = dict(setup["settings"].BUNDLEKIT)
    setup["settings"].BUNDLEKIT = {**good, "REVOKED": [str(setup["tmp"] / "gone.rev")]}
    data = a_bundle(setup).read_bytes()
    r = put(client, data)
    assert r.status_code == 500 and r["Content-Type"] == "application/json"
    assert (r.json()["error"], r.json()["retry"]) == ("server-misconfigured", False)
    state = client.get(f"/bundles/uploads/{sha(data)}", **auth()).json()
    assert (state["offset"], state["complete"]) == (len(data), False)
    assert not (setup["tmp"] / "inbox" / "rejected").exists()
    setup["settings"].BUNDLEKIT = good
    r = put(client, b"", content_range=f"bytes */{len(data)}", upload_id=sha(data))
    assert (r.status_code, r.json()["status"]) == (201, "queued")
    assert r.json()["upload"]["received"] == len(data)


def test_the_views_use_the_inbox_operations_not_its_folders():
    """Issue 14: REST is a face of the one import path; it never builds paths
    inside the inbox (done/, rejected/, reason files) itself."""
    import ast
    import inspect

    from django_adapter.rest import storage, views

    for module in (views, storage):
        tree = ast.parse(inspect.getsource(module))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "bundlekit.inbox":
                assert {a.name for a in node.names} <= {"InboxFolder"}, module.__name__
            if isinstance(node, ast.ImportFrom) and node.module == "django_adapter.importer":
                assert {a.name for a in node.names} <= {"DUPLICATE"}, module.__name__
