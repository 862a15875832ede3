"""An import runs Python's cyclic collector less often, and puts it back as it was."""

from __future__ import annotations

import gc

import pytest

from django_adapter.apply import fewer_collections


@pytest.fixture
def default_threshold():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_relaxed_inside_and_restored_after(default_threshold):
    with fewer_collections(5_000):
        assert gc.get_threshold() == (5_000, 10, 10)
        with fewer_collections(5_000):  # nested: left as the outer one set it
            assert gc.get_threshold() == (5_000, 10, 10)
        assert gc.get_threshold() == (5_000, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_restored_when_the_import_fails(default_threshold):
    with pytest.raises(RuntimeError), fewer_collections(5_000):
        raise RuntimeError("a bundle that could not be applied")
    assert gc.get_threshold() == (700, 10, 10)


def test_a_disabled_collector_stays_disabled(default_threshold):
    gc.set_threshold(0)
    with fewer_collections(5_000):
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold()[0] == 0


def test_garbage_in_cycles_is_still_collected_while_relaxed(default_threshold):
    """Relaxed, not off: objects in reference cycles, which reference counting
    never frees, are collected once enough new objects pile up."""
    import weakref

    class Node:
        pass

    with fewer_collections(5_000):
        first = Node()
        first.me = first  # a cycle nothing else refers to
        gone = weakref.ref(first)
        del first
        kept = []
        for _ in range(20):  # net new objects, well past the threshold
            kept.append([[] for _ in range(1_000)])
            if gone() is None:
                break
        assert gone() is None
