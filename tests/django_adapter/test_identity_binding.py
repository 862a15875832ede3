"""The server refuses a bundle whose site name its signing key is not trusted
as (issue 10: laptop-a's key file with its site line edited to laptop-b).

Runs on every backend: nothing may be written for such a bundle.
"""

from pathlib import Path

import pytest

from bundlekit.errors import SiteNameMismatch
from bundlekit.keys import load_public_key
from django_adapter.importer import import_bundle
from django_adapter.models import ImportedBundle, IncomingTransaction, SenderState
from django_adapter.workflow import export_to, import_paths
from tests.django_adapter.workflow_support import config_of, site_settings
from tests.test_app import models as m

pytestmark = [pytest.mark.django_db(databases=["default", "server"]), pytest.mark.attack]


def forged_key(keys) -> Path:
    """site-a's key file, its site line changed to site-b: it still loads."""
    text = keys.key("site-a").read_text().replace("# bundlekit-site: site-a\n",
                                                  "# bundlekit-site: site-b\n")
    assert "# bundlekit-site: site-b\n" in text
    path = keys.folder / "forged.key"
    path.write_text(text)
    path.chmod(0o600)
    return path


def server_rows():
    return (ImportedBundle.objects.using("server").count(),
            IncomingTransaction.objects.using("server").count(),
            SenderState.objects.using("server").count(),
            m.Household.objects.using("server").count())


@pytest.fixture
def forged_stick(keys, usb, tmp_path):
    """site-a's laptop seals a bundle that claims to be site-b's."""
    m.Household.objects.create(code="HH-1")
    forger = config_of(site_settings(keys, tmp_path, site="site-b", IDENTITY=str(forged_key(keys))),
                       tmp_path)
    export_to(usb, config=forger)
    (path,) = usb.iterdir()
    return path


def test_import_refuses_a_bundle_named_for_another_site(keys, server, forged_stick):
    run = import_paths([forged_stick.parent], config=server)
    (f,) = run.files
    assert not run.ok and f.status == "rejected"
    assert "trusted as site 'site-a'" in f.reason and "'site-b'" in f.reason
    assert server_rows() == (0, 0, 0, 0)


def test_import_bundle_raises_the_typed_error(keys, forged_stick):
    trusted = [load_public_key(keys.pub("site-a")), load_public_key(keys.pub("site-b"))]
    with pytest.raises(SiteNameMismatch) as err:
        import_bundle(forged_stick, identities=[keys.ids["central"]], trusted=trusted,
                      using="server")
    assert str(err.value).startswith(f"{forged_stick}: ")
    assert server_rows() == (0, 0, 0, 0)
