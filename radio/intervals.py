"""A set of integer byte ranges: what reassembly has received, what the sender has acked or must resend.

Convention: ranges are **half-open** `[start, stop)` byte offsets, as Python slices. The wire
(`MissingRequest`, `BurstReport.failed`) speaks inclusive `[first, last]`; `to_inclusive` and
`from_inclusive` convert. Ranges are kept sorted, disjoint and merged (adjacent ranges join), in two
`array('q')` columns (16 bytes per range), found with bisect: O(log n) search plus a memmove of the ranges
after the change point (~10 us at 50 k ranges; appends at the end, the in-order case, move nothing).
The number of ranges is bounded (`max_ranges`), so adversarial input cannot grow it without limit.
"""

from __future__ import annotations

import operator
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator

from radio.errors import RadioError

DEFAULT_MAX_RANGES = 1 << 20  # 16 MiB of range storage at most
MAX_OFFSET = (1 << 63) - 1  # int64 columns; the wire's offsets are u64 / u40


def _bounds(start: int, stop: int) -> tuple[int, int]:
    """Validated (start, stop) as Python ints (numpy integers accepted)."""
    try:
        start, stop = operator.index(start), operator.index(stop)
    except TypeError:
        raise RadioError(f"byte range bounds must be integers, got {start!r}, {stop!r}") from None
    if not 0 <= start <= stop <= MAX_OFFSET:
        raise RadioError(f"bad byte range [{start}, {stop}): need 0 <= start <= stop <= 2**63 - 1")
    return start, stop


def to_inclusive(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Half-open [start, stop) ranges -> inclusive [first, last] (empty ranges are left out)."""
    return [(start, stop - 1) for start, stop in ranges if stop > start]


def from_inclusive(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive [first, last] ranges (e.g. from a MissingRequest) -> half-open [start, stop)."""
    out = []
    for first, last in ranges:
        try:
            first, last = operator.index(first), operator.index(last)
        except TypeError:
            raise RadioError(f"inclusive byte range bounds must be integers, got {first!r}, {last!r}") from None
        if not 0 <= first <= last < MAX_OFFSET:
            raise RadioError(f"bad inclusive byte range [{first}, {last}]: need 0 <= first <= last")
        out.append((first, last + 1))
    return out


class IntervalSet:
    """Sorted, disjoint, merged half-open byte ranges with a bounded count."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = (), max_ranges: int = DEFAULT_MAX_RANGES) -> None:
        if not isinstance(max_ranges, int) or max_ranges < 1:
            raise RadioError(f"max_ranges must be a positive integer, got {max_ranges!r}")
        self.max_ranges = max_ranges
        self._starts = array("q")
        self._stops = array("q")
        self._covered = 0
        for start, stop in ranges:
            self.add(start, stop)

    # --- changes ---------------------------------------------------------------------------------

    def add(self, start: int, stop: int) -> int:
        """Cover [start, stop); returns the bytes newly covered. RadioError when it would exceed max_ranges."""
        start, stop = _bounds(start, stop)
        if start == stop:
            return 0
        lo = bisect_left(self._stops, start)  # first range that ends at or after start (touching merges)
        hi = bisect_right(self._starts, stop)  # ranges [lo, hi) overlap or touch [start, stop)
        if lo == hi and len(self._starts) >= self.max_ranges:
            raise RadioError(f"interval set full: max_ranges={self.max_ranges} ranges")
        old = sum(self._stops[i] - self._starts[i] for i in range(lo, hi))
        new_start = min(start, self._starts[lo]) if lo < hi else start
        new_stop = max(stop, self._stops[hi - 1]) if lo < hi else stop
        self._starts[lo:hi] = array("q", [new_start])
        self._stops[lo:hi] = array("q", [new_stop])
        gained = (new_stop - new_start) - old
        self._covered += gained
        return gained

    def remove(self, start: int, stop: int) -> int:
        """Uncover [start, stop); returns the bytes removed. May split one range in two (bounded as add)."""
        start, stop = _bounds(start, stop)
        if start == stop:
            return 0
        lo = bisect_right(self._stops, start)  # first range ending after start
        hi = bisect_left(self._starts, stop)  # ranges [lo, hi) overlap [start, stop)
        if lo >= hi:
            return 0
        keep_starts, keep_stops = array("q"), array("q")
        if self._starts[lo] < start:
            keep_starts.append(self._starts[lo])
            keep_stops.append(start)
        if self._stops[hi - 1] > stop:
            keep_starts.append(stop)
            keep_stops.append(self._stops[hi - 1])
        if len(self._starts) - (hi - lo) + len(keep_starts) > self.max_ranges:
            raise RadioError(f"interval set full: max_ranges={self.max_ranges} ranges")
        removed = sum(min(self._stops[i], stop) - max(self._starts[i], start) for i in range(lo, hi))
        self._starts[lo:hi] = keep_starts
        self._stops[lo:hi] = keep_stops
        self._covered -= removed
        return removed

    def update(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Add every [start, stop) of `ranges` (another IntervalSet included)."""
        for start, stop in list(ranges):
            self.add(start, stop)

    def difference_update(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Remove every [start, stop) of `ranges`."""
        for start, stop in list(ranges):
            self.remove(start, stop)

    def clear(self) -> None:
        self._starts, self._stops, self._covered = array("q"), array("q"), 0

    # --- queries ---------------------------------------------------------------------------------

    def __contains__(self, offset: object) -> bool:
        """Whether byte `offset` is covered."""
        try:
            offset = operator.index(offset)  # type: ignore[arg-type]
        except TypeError:
            return False
        i = bisect_right(self._starts, offset) - 1
        return i >= 0 and offset < self._stops[i]

    def contains(self, offset: int) -> bool:
        """Whether byte `offset` is covered."""
        return offset in self

    def covers(self, start: int, stop: int) -> bool:
        """Whether every byte of [start, stop) is covered (an empty range is)."""
        start, stop = _bounds(start, stop)
        if start == stop:
            return True
        i = bisect_right(self._starts, start) - 1
        return i >= 0 and stop <= self._stops[i]

    def contiguous_end(self, offset: int = 0) -> int:
        """End of the covered run that contains `offset` (`offset` itself when it is not covered)."""
        offset = _bounds(offset, offset)[0]
        i = bisect_right(self._starts, offset) - 1
        return self._stops[i] if i >= 0 and offset < self._stops[i] else offset

    def overlapping(self, start: int, stop: int) -> list[tuple[int, int]]:
        """The covered parts of [start, stop), clipped to it, in order."""
        start, stop = _bounds(start, stop)
        lo = bisect_right(self._stops, start)
        hi = bisect_left(self._starts, stop)
        return [(max(self._starts[i], start), min(self._stops[i], stop)) for i in range(lo, hi)]

    def missing(self, size: int, limit: int | None = None) -> list[tuple[int, int]]:
        """The gaps within [0, size), in order: the first `limit` of them (all when None)."""
        size = _bounds(0, size)[1]
        if limit is not None:
            try:
                limit = operator.index(limit)
            except TypeError:
                raise RadioError(f"missing-range limit must be an integer, got {limit!r}") from None
            if limit < 0:
                raise RadioError(f"missing-range limit must be >= 0, got {limit}")
        out: list[tuple[int, int]] = []
        cursor = 0
        i = 0
        count = len(self._starts)
        while cursor < size and (limit is None or len(out) < limit):
            while i < count and self._stops[i] <= cursor:
                i += 1
            if i == count or self._starts[i] >= size:
                out.append((cursor, size))
                break
            if self._starts[i] > cursor:
                out.append((cursor, self._starts[i]))
            cursor = self._stops[i]
        return out

    @property
    def covered_bytes(self) -> int:
        """Bytes covered, over all ranges (kept as a running total: O(1))."""
        return self._covered

    @property
    def first(self) -> tuple[int, int] | None:
        """The lowest range, or None when empty."""
        return (self._starts[0], self._stops[0]) if self._starts else None

    def __len__(self) -> int:
        """Number of disjoint ranges."""
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """The ranges (start, stop) in ascending order (a snapshot)."""
        return iter(list(zip(self._starts, self._stops)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IntervalSet):
            return NotImplemented
        return self._starts == other._starts and self._stops == other._stops

    def copy(self) -> IntervalSet:
        new = IntervalSet(max_ranges=self.max_ranges)
        new._starts, new._stops, new._covered = array("q", self._starts), array("q", self._stops), self._covered
        return new

    def __repr__(self) -> str:
        shown = ", ".join(f"[{a}, {b})" for a, b in list(self)[:8])
        more = f", ... ({len(self)} ranges)" if len(self) > 8 else ""
        return f"IntervalSet({shown}{more})"
