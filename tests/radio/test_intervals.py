"""Tests of radio.intervals: IntervalSet against a plain set of byte offsets (random operations), merging,
gaps, inclusive conversions, and the bound on the number of ranges."""

from __future__ import annotations

import numpy as np
import pytest

from radio.errors import RadioError
from radio.intervals import IntervalSet, from_inclusive, to_inclusive


def _ranges_of(covered: set[int]) -> list[tuple[int, int]]:
    """Sorted maximal runs of a set of integers, half-open."""
    out: list[tuple[int, int]] = []
    for x in sorted(covered):
        if out and out[-1][1] == x:
            out[-1] = (out[-1][0], x + 1)
        else:
            out.append((x, x + 1))
    return out


def test_add_merges_overlapping_and_adjacent_ranges() -> None:
    s = IntervalSet()
    assert s.add(10, 20) == 10
    assert s.add(30, 40) == 10
    assert list(s) == [(10, 20), (30, 40)] and len(s) == 2
    assert s.add(20, 30) == 10  # touches both: one range
    assert list(s) == [(10, 40)] and s.covered_bytes == 30
    assert s.add(15, 35) == 0 and s.add(5, 5) == 0
    assert s.add(0, 50) == 20 and list(s) == [(0, 50)]


def test_remove_splits_and_trims() -> None:
    s = IntervalSet([(0, 100)])
    assert s.remove(40, 60) == 20
    assert list(s) == [(0, 40), (60, 100)]
    assert s.remove(30, 70) == 20 and list(s) == [(0, 30), (70, 100)]
    assert s.remove(200, 300) == 0 and s.remove(30, 70) == 0
    assert s.remove(0, 100) == 60 and not s and s.covered_bytes == 0


def test_queries() -> None:
    s = IntervalSet([(10, 20), (30, 40)])
    assert [x in s for x in (9, 10, 19, 20, 30, 39, 40)] == [False, True, True, False, True, True, False]
    assert s.contains(np.int64(15)) and "15" not in s
    assert s.covers(10, 20) and s.covers(12, 12) and not s.covers(15, 35) and not s.covers(0, 5)
    assert s.contiguous_end(0) == 0 and s.contiguous_end(10) == 20 and s.contiguous_end(35) == 40
    assert s.overlapping(15, 35) == [(15, 20), (30, 35)] and s.overlapping(20, 30) == []
    assert s.first == (10, 20) and IntervalSet().first is None
    assert s.missing(50) == [(0, 10), (20, 30), (40, 50)]
    assert s.missing(50, limit=2) == [(0, 10), (20, 30)] and s.missing(50, limit=0) == []
    assert s.missing(35) == [(0, 10), (20, 30)] and s.missing(15) == [(0, 10)]
    assert IntervalSet().missing(7) == [(0, 7)] and IntervalSet([(0, 7)]).missing(7) == []
    assert s == IntervalSet([(30, 40), (10, 15), (15, 20)]) and s.copy() == s


def test_random_operations_match_a_set_of_bytes() -> None:
    rng = np.random.default_rng(1)
    s, ref = IntervalSet(), set()
    for _ in range(3000):
        a = int(rng.integers(0, 500))
        b = a + int(rng.integers(0, 40))
        if rng.random() < 0.65:
            assert s.add(a, b) == len(set(range(a, b)) - ref)
            ref |= set(range(a, b))
        else:
            assert s.remove(a, b) == len(set(range(a, b)) & ref)
            ref -= set(range(a, b))
        assert s.covered_bytes == len(ref)
    assert list(s) == _ranges_of(ref)
    assert s.missing(520) == _ranges_of(set(range(520)) - ref)
    assert all((x in s) == (x in ref) for x in range(540))


def test_inclusive_conversions() -> None:
    assert to_inclusive([(0, 10), (20, 21), (5, 5)]) == [(0, 9), (20, 20)]
    assert from_inclusive([(0, 9), (20, 20)]) == [(0, 10), (20, 21)]
    assert from_inclusive(to_inclusive(IntervalSet([(3, 8), (9, 12)]))) == [(3, 8), (9, 12)]
    for bad in ([(5, 4)], [(-1, 3)], [(0.5, 3)]):
        with pytest.raises(RadioError):
            from_inclusive(bad)


def test_bad_ranges_are_refused_in_one_line() -> None:
    s = IntervalSet()
    for call in (lambda: s.add(5, 4), lambda: s.add(-1, 3), lambda: s.add(0, 2**63), lambda: s.add(1.5, 3),
                 lambda: s.remove(3, 1), lambda: s.missing(-1), lambda: s.missing(10, -1),
                 lambda: IntervalSet(max_ranges=0)):
        with pytest.raises(RadioError) as info:
            call()
        assert "\n" not in str(info.value)


def test_range_count_is_bounded() -> None:
    s = IntervalSet(max_ranges=4)
    for i in range(4):
        s.add(10 * i, 10 * i + 5)
    with pytest.raises(RadioError, match="max_ranges=4"):
        s.add(100, 105)
    with pytest.raises(RadioError, match="max_ranges=4"):
        s.remove(1, 2)  # would split a range into a fifth
    s.add(5, 10)  # merges: allowed when full
    assert len(s) == 3 and s.covered_bytes == 25
    s.add(100, 105)
    assert len(s) == 4


def test_many_ranges_stay_fast_and_small() -> None:
    """50 k disjoint ranges added in random order, then the gaps filled in order (each fill merges two
    ranges); memory is two int64 columns (16 bytes per range). ~0.5 s."""
    s = IntervalSet()
    rng = np.random.default_rng(2)
    for a in rng.permutation(50_000):
        s.add(4 * int(a), 4 * int(a) + 2)
    assert len(s) == 50_000 and s.covered_bytes == 100_000
    assert s._starts.itemsize * len(s._starts) == 400_000
    assert len(s.missing(200_000, limit=100)) == 100
    for a in range(50_000):
        s.add(4 * a + 2, 4 * a + 4)
    assert list(s) == [(0, 200_000)]
