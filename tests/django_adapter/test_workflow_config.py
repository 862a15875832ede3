"""settings.BUNDLEKIT: defaults, path resolution, flags, one-line errors, system check."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from django.test import override_settings

from bundlekit.errors import BundleError
from django_adapter.conf import ConfigError, check_settings, get_config
from tests.django_adapter.workflow_support import site_settings


def conf(raw, base=None):
    return get_config(settings=SimpleNamespace(BUNDLEKIT=raw, BASE_DIR=base))


def test_defaults_and_relative_paths_resolve_against_base_dir(keys, tmp_path):
    config = conf({"SITE": "site-a", "IDENTITY": "keys/site-a.key", "TRUSTED": ["keys/central.pub"]}, tmp_path)
    assert config.identity_path == tmp_path / "keys" / "site-a.key"
    assert config.outbox == tmp_path / "var" / "outbox" and config.inbox == tmp_path / "var" / "inbox"
    assert config.receipts_out == tmp_path / "var" / "receipts" and config.forward is None
    assert config.database == "default" and config.max_bytes == 1 << 30
    assert config.identity.site == "site-a" and config.trusted[0].site == "central"


def test_flags_override(keys, tmp_path):
    config = get_config(
        settings=SimpleNamespace(BUNDLEKIT=site_settings(keys, tmp_path), BASE_DIR=tmp_path),
        identity=keys.key("site-b"),
        recipients=[keys.pub("stranger")],
        trusted=[keys.pub("site-a")],
        database="server",
    )
    assert config.identity.site == "site-b" and [k.site for k in config.recipients] == ["stranger"]
    assert [k.site for k in config.trusted] == ["site-a"] and config.database == "server"


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"IDENTITY": "k.key"}, "BUNDLEKIT['SITE'] is required"),
        ({"SITE": "a"}, "BUNDLEKIT['IDENTITY'] is required"),
        ({"SITE": "a", "IDENTITY": "k", "RECIPIENT": []}, "'RECIPIENT'] is not a known setting"),
        ({"SITE": "a", "IDENTITY": "k", "TRUSTED": "x.pub"}, "must be a list"),
        ({"SITE": "a", "IDENTITY": "k", "MAX_BYTES": "1G"}, "MAX_BYTES"),
        ({"SITE": "a", "IDENTITY": "k", "DATABASE": "nope"}, "no database alias 'nope'"),
        (None, "BUNDLEKIT is not set"),
    ],
)
def test_bad_dict_is_one_line(raw, words):
    with pytest.raises(ConfigError) as caught:
        conf(raw)
    assert words in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, BundleError) and caught.value.code == "bad-config"


def test_unreadable_or_wrong_key_files_name_setting_and_file(keys, tmp_path):
    config = conf(site_settings(keys, tmp_path, IDENTITY=str(tmp_path / "missing.key")), tmp_path)
    with pytest.raises(ConfigError, match=r"BUNDLEKIT\['IDENTITY'\]: .*missing.key"):
        _ = config.identity
    config = conf(site_settings(keys, tmp_path, RECIPIENTS=[str(keys.key("central"))]), tmp_path)
    with pytest.raises(ConfigError, match=r"BUNDLEKIT\['RECIPIENTS'\]: .*central.key: is a secret key"):
        _ = config.recipients
    with pytest.raises(ConfigError, match="RECIPIENTS'] is empty"):
        conf(site_settings(keys, tmp_path, RECIPIENTS=[]), tmp_path).need_recipients()


def test_revoked_accepts_files_and_fingerprints(keys, tmp_path):
    fp = keys.ids["central"].fingerprint
    config = conf(site_settings(keys, tmp_path, REVOKED=[fp.upper(), str(keys.pub("site-b"))]), tmp_path)
    assert config.revoked_keys[0] == fp and config.revoked_keys[1].site == "site-b"
    assert config.trusted_issuers() == ()


def test_system_check(keys, tmp_path):
    with override_settings(BUNDLEKIT=None):
        assert check_settings() == []
    with override_settings(BUNDLEKIT=site_settings(keys, tmp_path)):
        assert check_settings() == []
    with override_settings(BUNDLEKIT=site_settings(keys, tmp_path, SITE="other-name")):
        assert [e.id for e in check_settings()] == ["django_adapter.W101"]
    with override_settings(BUNDLEKIT={"SITE": "a"}):
        assert [e.id for e in check_settings()] == ["django_adapter.E101"]
    # A key not made yet warns (so `migrate` still runs on a new machine) ...
    with override_settings(BUNDLEKIT=site_settings(keys, tmp_path, TRUSTED=[str(Path("/nonexistent.pub"))])):
        (warning,) = check_settings()
        assert warning.id == "django_adapter.W102" and "nonexistent.pub" in warning.msg
    # ... once per file, even when two settings name it.
    missing = str(Path("/nonexistent.pub"))
    with override_settings(BUNDLEKIT=site_settings(keys, tmp_path, TRUSTED=[missing],
                                                   RECIPIENTS=[missing])):
        (warning,) = check_settings()
        assert warning.id == "django_adapter.W102" and "nonexistent.pub" in warning.msg
    # ... a key file of the wrong kind is an error.
    with override_settings(BUNDLEKIT=site_settings(keys, tmp_path, TRUSTED=[str(keys.key("central"))])):
        (error,) = check_settings()
        assert error.id == "django_adapter.E102" and "central" in error.msg


def test_revoked_accepts_a_revocation_list(keys, tmp_path):
    import datetime as dt

    from bundlekit.keys import load_public_key
    from bundlekit.rotation import Revocation, revocation_list_text

    stolen = load_public_key(keys.pub("site-b"))
    listing = tmp_path / "revoked.list"
    when = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    listing.write_text(revocation_list_text([Revocation(stolen, "laptop stolen", when)]))
    config = conf(site_settings(keys, tmp_path, REVOKED=[str(listing)]), tmp_path)
    (only,) = config.revoked_keys
    assert only.fingerprint == stolen.fingerprint
