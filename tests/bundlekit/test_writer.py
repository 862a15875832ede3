"""seal(): a site turns pending records into bundle files on a stick."""

from __future__ import annotations

import json
import os
import random

import pytest

from bundlekit import records
from bundlekit.errors import WriteFailed
from bundlekit.naming import is_bundle_name
from bundlekit.reader import open_bundle, verify
from bundlekit.writer import ChainLink, SealedBundle, seal

from .conftest import FIXED_TIME, make_records


def test_seal_then_open_gives_back_the_same_records(tmp_path, site, community):
    recs = make_records(50)
    (sealed,) = seal(recs, identity=site, recipients=[community.public], out_dir=tmp_path,
                     after=ChainLink(0, None))
    assert is_bundle_name(os.path.basename(sealed.path))
    assert os.path.basename(sealed.path).startswith("site-a-kisumu-00000001-")
    m = sealed.manifest
    assert (m.seq, m.prev, m.record_count) == (1, None, 50)
    assert m.kinds == {"survey.member": 17, "survey.household": 33}
    assert (m.first_key, m.last_key) == (recs[0]["id"], recs[-1]["id"])
    with open_bundle(sealed.path, [community]) as bundle:
        assert bundle.digest == sealed.digest
        assert list(bundle) == recs


def test_every_recipient_can_open_it(tmp_path, site, servers):
    (sealed,) = seal(make_records(5), identity=site, recipients=[s.public for s in servers],
                     out_dir=tmp_path, after=ChainLink(0, None))
    for server in servers:
        with open_bundle(sealed.path, [server]) as bundle:
            assert len(list(bundle)) == 5


def test_roll_over_keeps_each_file_under_the_limit_and_chains_them(tmp_path, site, community):
    recs = make_records(1500)
    seen: list[SealedBundle] = []
    sealed = seal(recs, identity=site, recipients=[community.public], out_dir=tmp_path,
                  after=ChainLink(7, b"\x01" * 32), max_bytes=4096, on_sealed=seen.append)
    assert len(sealed) > 3 and seen == sealed
    assert all(os.path.getsize(s.path) <= 4096 for s in sealed)
    assert [s.manifest.seq for s in sealed] == list(range(8, 8 + len(sealed)))
    assert sealed[0].manifest.prev == b"\x01" * 32
    for before, after in zip(sealed, sealed[1:], strict=False):
        assert after.manifest.prev == before.digest
    got = []
    for s in sealed:
        with open_bundle(s.path, [community]) as bundle:
            got.extend(bundle)
    assert got == recs


def test_roll_over_with_incompressible_records(tmp_path, site, community):
    recs = [{"id": i, "blob": os.urandom(700)} for i in range(60)]
    sealed = seal(recs, identity=site, recipients=[community.public], out_dir=tmp_path,
                  after=ChainLink(0, None), max_bytes=8192)
    assert all(os.path.getsize(s.path) <= 8192 for s in sealed)
    # Conservative but not wasteful: files are filled to more than half.
    assert all(os.path.getsize(s.path) > 4096 for s in sealed[:-1])
    assert sum(s.manifest.record_count for s in sealed) == 60


def test_roll_over_with_records_of_every_size_stays_under_the_limit(tmp_path, site, community):
    """The quick size test lets most records in with a few integer operations; it
    must never let a file pass the limit, whatever mix of sizes comes."""
    rng = random.Random(5)
    recs = [{"id": i, "model": f"m{i % 7}",
             "blob": rng.randbytes(rng.choice((10, 300, 3000, 9000))),
             "text": "abc " * rng.randrange(500)} for i in range(400)]
    sealed = seal(recs, identity=site, recipients=[community.public], out_dir=tmp_path,
                  after=ChainLink(0, None), max_bytes=40_000)
    assert len(sealed) > 5
    assert all(os.path.getsize(s.path) <= 40_000 for s in sealed)
    assert all(os.path.getsize(s.path) > 20_000 for s in sealed[:-1])
    got = []
    for s in sealed:
        with open_bundle(s.path, [community]) as bundle:
            got.extend(bundle)
    assert got == recs


def test_empty_input_seals_nothing(tmp_path, site, community):
    assert seal([], identity=site, recipients=[community.public], out_dir=tmp_path,
                after=ChainLink(0, None)) == []
    assert os.listdir(tmp_path) == []


def test_a_record_larger_than_the_limit_is_refused(tmp_path, site, community):
    with pytest.raises(ValueError, match="cannot fit"):
        seal([{"blob": os.urandom(10_000)}], identity=site, recipients=[community.public],
             out_dir=tmp_path, after=ChainLink(0, None), max_bytes=4096)
    assert os.listdir(tmp_path) == []


def test_created_is_a_seam_for_deterministic_manifests(tmp_path, site, community):
    (sealed,) = seal(make_records(1), identity=site, recipients=[community.public],
                     out_dir=tmp_path, after=ChainLink(0, None), created=FIXED_TIME)
    assert verify(sealed.path).manifest.created == FIXED_TIME


def test_misuse_is_a_programming_error(tmp_path, site, community):
    common = dict(identity=site, out_dir=tmp_path, after=ChainLink(0, None))
    with pytest.raises(ValueError):
        seal(make_records(1), recipients=[], **common)
    with pytest.raises(ValueError):
        seal(make_records(1), recipients=[community.public], max_bytes=10, **common)
    with pytest.raises(ValueError):
        ChainLink(0, b"\x00" * 32)
    with pytest.raises(TypeError):
        seal([{1: "x"}], recipients=[community.public], **common)


class FailingFile:
    """A file object whose disk fills up after ``budget`` bytes."""

    def __init__(self, path: str, budget: int):
        self._f = open(path, "xb")
        self._budget = budget

    def write(self, data) -> int:
        if len(data) > self._budget:
            raise OSError(28, "No space left on device")
        self._budget -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)


@pytest.mark.parametrize("budget", [0, 10, 300, 5000, 150_000])
def test_full_disk_mid_write_leaves_no_bundle_behind(tmp_path, site, community, budget):
    incompressible = [{"id": i, "blob": os.urandom(100)} for i in range(2000)]  # > 200 kB
    with pytest.raises(WriteFailed, match="full") as e:
        seal(incompressible, identity=site, recipients=[community.public], out_dir=tmp_path,
             after=ChainLink(0, None), opener=lambda p: FailingFile(p, budget))
    assert str(tmp_path) in str(e.value)
    assert os.listdir(tmp_path) == []


def test_earlier_bundles_stay_when_a_later_one_fails(tmp_path, site, community):
    opened = []

    def opener(path):
        opened.append(path)
        return FailingFile(path, 10**9 if len(opened) < 3 else 100)

    seen = []
    with pytest.raises(WriteFailed):
        seal(make_records(1500), identity=site, recipients=[community.public], out_dir=tmp_path,
             after=ChainLink(0, None), max_bytes=4096, opener=opener, on_sealed=seen.append)
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(s.path) for s in seen)
    assert len(seen) == 2
    for s in seen:
        verify(s.path)


def test_read_only_target_is_write_failed(tmp_path, site, community):
    missing = tmp_path / "stick-was-removed"
    with pytest.raises(WriteFailed):
        seal(make_records(1), identity=site, recipients=[community.public], out_dir=missing,
             after=ChainLink(0, None))


def test_records_straight_from_json_seal_as_their_values_do(tmp_path, site, community):
    """``bundle seal`` hands seal() records whose typed values are already ext data
    (records.packable_from_jsonable): the bundle says and holds the same."""
    recs = make_records(20)
    jsonable = [json.loads(json.dumps(records.to_jsonable(r))) for r in recs]
    (sealed,) = seal([records.packable_from_jsonable(j) for j in jsonable], identity=site,
                     recipients=[community.public], out_dir=tmp_path, after=ChainLink(0, None))
    m = sealed.manifest
    assert (m.first_key, m.last_key) == (recs[0]["id"], recs[-1]["id"])
    assert m.uncompressed_size == sum(len(records.packb(r)) for r in recs)
    with open_bundle(sealed.path, [community]) as bundle:
        assert list(bundle) == recs


def test_key_of_turns_packed_records_keys_into_the_manifests_keys(tmp_path, site, community):
    """A store that keeps each key in another form (a UUID as its hex text) hands
    it over as it is; ``key_of`` makes the first and last keys of every bundle, and
    the bundles are the ones the keys' values would have made.  A dict record's
    key is its value already and does not go through ``key_of``."""
    import uuid

    from bundlekit.writer import PackedRecord

    recs = make_records(1500)
    recs[-1] = {**recs[-1], "id": "not-hex"}  # key_of would refuse it: a dict keeps its key
    as_values = [PackedRecord(records.packb(r), r["id"], r["model"]) for r in recs[:-1]]
    as_text = [PackedRecord(records.packb(r), r["id"].hex, r["model"]) for r in recs[:-1]]
    seen: list = []

    def key_of(text):
        seen.append(text)
        return uuid.UUID(hex=text)

    kw = dict(identity=site, recipients=[community.public], after=ChainLink(0, None),
              max_bytes=4096, created=FIXED_TIME)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    want = seal([*as_values, recs[-1]], out_dir=tmp_path / "a", **kw)
    got = seal([*as_text, recs[-1]], out_dir=tmp_path / "b", key_of=key_of, **kw)
    assert len(got) > 3
    assert [(s.manifest.first_key, s.manifest.last_key, s.manifest.record_count)
            for s in got] == [(s.manifest.first_key, s.manifest.last_key,
                               s.manifest.record_count) for s in want]
    assert got[-1].manifest.last_key == "not-hex"
    assert all(type(s.manifest.first_key) is uuid.UUID for s in got)
    # Only the keys a manifest states (and those near a roll-over) go through it:
    # in one bundle, the first and the last.
    seen.clear()
    (one,) = seal(as_text, out_dir=tmp_path / "b", key_of=key_of,
                  **{**kw, "after": got[-1].link, "max_bytes": 1 << 20})
    assert seen == [as_text[0].key, as_text[-1].key]
    assert (one.manifest.first_key, one.manifest.last_key) == (recs[0]["id"], recs[-2]["id"])
