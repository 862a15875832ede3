"""The overview's figures that need no page: a key's state and the per-day chart."""

import datetime as dt

from bundlekit.keys import Identity, write_keypair
from django_adapter.dashboard import chart
from django_adapter.dashboard.senders import key_statuses
from tests.django_adapter.workflow_support import config_of


def test_key_states_trusted_rotating_revoked(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    old, new = Identity.generate("site-a"), Identity.generate("site-a")
    other, gone = Identity.generate("site-b"), Identity.generate("site-c")
    for name, ident in (("site-a-old", old), ("site-a-new", new), ("site-b", other), ("site-c", gone)):
        write_keypair(ident, keys, name=name)
    config = config_of({
        "SITE": "central",
        "IDENTITY": str(keys / "site-b.key"),
        "TRUSTED": [str(keys / f"{n}.pub") for n in ("site-a-old", "site-a-new", "site-b", "site-c")],
        "REVOKED": [gone.fingerprint],
    }, tmp_path)
    states, problem = key_statuses(config)
    assert problem == ""
    assert states[old.fingerprint] == states[new.fingerprint] == "rotating"
    assert states[other.fingerprint] == "trusted"
    assert states[gone.fingerprint] == "revoked"

    # Once the old key is revoked, the new one is simply trusted.
    retired = config_of({**{"SITE": "central", "IDENTITY": str(keys / "site-b.key")},
                         "TRUSTED": [str(keys / f"{n}.pub") for n in ("site-a-old", "site-a-new")],
                         "REVOKED": [str(keys / "site-a-old.pub")]}, tmp_path)
    states, _ = key_statuses(retired)
    assert (states[old.fingerprint], states[new.fingerprint]) == ("revoked", "trusted")


def test_key_state_is_unknown_when_a_key_file_cannot_be_read(tmp_path):
    config = config_of({"SITE": "central", "IDENTITY": "x.key",
                        "TRUSTED": [str(tmp_path / "missing.pub")]}, tmp_path)
    states, problem = key_statuses(config)
    assert states == {} and "missing.pub" in problem


def test_the_chart_has_a_bar_per_day_and_says_it_in_words():
    days = chart.days_ending(dt.date(2026, 3, 28), 28)
    assert len(days) == 28 and days[0] == dt.date(2026, 3, 1)
    per_day = [(d, 0) for d in days]
    per_day[5] = (days[5], 40)
    per_day[27] = (days[27], 10)
    svg = str(chart.bars_svg(per_day))
    assert svg.count("<rect") == 28 and 'role="img"' in svg
    assert "50 records applied from 01 Mar to 28 Mar 2026" in chart.describe(per_day)
    assert "most on 06 Mar: 40" in svg
    assert chart.describe([(d, 0) for d in days]).startswith("No records applied")
