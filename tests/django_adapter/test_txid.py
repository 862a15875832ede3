"""Transaction ids are UUIDv7: valid, unique, increasing within a process, apart
across processes, and compressible (consecutive ids share all but a few bytes)."""

import multiprocessing
import time
import uuid
import zlib

from django_adapter import txid


def test_ids_are_valid_version_7_uuids_with_the_current_time():
    before = time.time_ns() // 1_000_000
    u = txid.new_tx_id()
    after = time.time_ns() // 1_000_000
    assert isinstance(u, uuid.UUID)
    assert u.version == 7 and u.variant == uuid.RFC_4122
    assert uuid.UUID(str(u)) == u
    assert before <= u.int >> 80 <= after + 1


def test_ids_of_one_process_are_unique_and_strictly_increasing():
    ids = [txid.new_tx_id().int for _ in range(20_000)]  # many per millisecond
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_a_full_counter_or_a_clock_step_back_moves_on_instead_of_repeating(monkeypatch):
    now = [1_700_000_000_000 * 1_000_000]
    monkeypatch.setattr(txid.time, "time_ns", lambda: now[0])
    ids = [txid.new_tx_id().int for _ in range(5000)]  # > 4096 in one millisecond
    now[0] -= 10**9  # the clock steps back one second
    ids += [txid.new_tx_id().int for _ in range(10)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def _child_ids(queue):
    queue.put([txid.new_tx_id().int for _ in range(100)])


def test_forked_processes_draw_their_own_random_bits():
    txid.new_tx_id()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_child_ids, args=(queue,)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [queue.get(timeout=30) for _ in procs]
    for p in procs:
        p.join()
    low = (1 << 62) - 1
    nodes = {ids[0] & low for ids in got} | {txid.new_tx_id().int & low}
    assert len(nodes) == 3
    assert not set(got[0]) & set(got[1])


def test_consecutive_ids_compress_where_random_ones_cannot():
    ordered = b"".join(txid.new_tx_id().bytes for _ in range(1000))
    random_ids = b"".join(uuid.uuid4().bytes for _ in range(1000))
    assert len(zlib.compress(ordered, 6)) < len(ordered) / 3
    assert len(zlib.compress(random_ids, 6)) > len(random_ids) * 0.95
