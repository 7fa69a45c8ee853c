"""Frame v2 on the edge, a resumed session: the held list's last_burst, and an earlier host's late bursts, which
are kept but never reported (synthetic events, as in test_session_v2)."""

from __future__ import annotations

import os

from edge_node.session_v2 import RESUME_GAP, EdgeSessionV2
from radio.burst import FLAG_LAST
from testbed.messages import BurstDone, MissingRequest

from test_session_v2 import L, MCS, StubRadio, burst_events, start


def done(burst: int, last: bool = False) -> BurstDone:
    return BurstDone(session=9, burst=burst, first_sample=0, samples_sent=10, ranges=[], airtime_s=0.1,
                     mcs=MCS.name, last=last)


def session(tmp_path, payload: bytes) -> EdgeSessionV2:
    return EdgeSessionV2(start(payload), b"host", memory_limit_bytes=1 << 20, spill_dir=tmp_path,
                         max_payload_bytes=1 << 20)


def resume(s: EdgeSessionV2, radio: StubRadio) -> None:
    """What FrameV2Edge.resume does: earlier announcements are not waited for, the session resumes."""
    radio.announced.clear()
    s.resume()


def shown(messages) -> list[tuple[str, int | None, bool | None]]:
    return [(type(m).__name__, getattr(m, "burst", None), getattr(m, "detected", None)) for m in messages]


def test_a_dead_hosts_late_burst_is_kept_but_neither_reported_nor_settles_the_new_hosts(tmp_path) -> None:
    payload = os.urandom(40 * L)
    s, radio = session(tmp_path, payload), StubRadio()
    for burst in range(3):  # the first host: bursts 0..2 of 5 codewords each, then it dies while sending burst 3
        s.on_burst_done(done(burst), radio)
        radio.events = burst_events(payload, 9, burst, 5 * burst * L, 5)
        assert shown(s.step(radio)) == [("BurstReport", burst, True)]

    resume(s, radio)  # a new host starts the same session
    (held,) = s.step(radio)
    assert isinstance(held, MissingRequest) and held.through_burst is None and held.unit == "byte"
    assert held.last_burst == 2 + RESUME_GAP and s.floor == 3 + RESUME_GAP
    assert held.ranges == [[15 * L, 40 * L - 1]]

    s.on_burst_done(done(0), radio)  # the new host's probe, numbered 0 before the held list reached it
    radio.events = burst_events(payload, 9, 3, 15 * L, 5)  # the dead host's burst 3 comes out of the cable first
    assert s.step(radio) == [] and s.stale_bursts == 1  # not reported, and the probe is not settled as lost
    assert 0 in radio.announced and s.reassembly.received_bytes == 20 * L  # its codewords are kept
    radio.events = burst_events(payload, 9, 0, 0, 5)
    assert shown(s.step(radio)) == [("BurstReport", 0, True)]

    first = held.last_burst + 1  # the new host's numbers from here on
    s.on_burst_done(done(first, last=True), radio)
    radio.events = burst_events(payload, 9, 2, 10 * L, 5) + \
        burst_events(payload, 9, first, 20 * L, 20, flags=FLAG_LAST)
    out = s.step(radio)  # a duplicate of the dead host's burst 2 is stale as well
    assert shown(out) == [("BurstReport", first, True), ("MissingRequest", None, None)] and s.stale_bursts == 2
    assert out[1].through_burst == first and out[1].last_burst is None and s.complete


def test_the_new_hosts_burst_decoded_before_its_announcement_is_reported_when_it_comes(tmp_path) -> None:
    payload = os.urandom(10 * L)
    s, radio = session(tmp_path, payload), StubRadio()
    resume(s, radio)  # nothing seen before: the numbering still moves on by RESUME_GAP
    (held,) = s.step(radio)
    assert held.last_burst == RESUME_GAP - 1 and held.missing_count == len(payload)
    radio.events = burst_events(payload, 9, 0, 0, 4)  # the probe's RxBurst comes before its BurstDone
    assert s.step(radio) == []
    s.on_burst_done(done(0), radio)
    assert shown(s.step(radio)) == [("BurstReport", 0, True)] and 0 not in radio.announced
    radio.events = burst_events(payload, 9, 0, 0, 4)  # and a late duplicate is not reported twice
    assert s.step(radio) == []


def test_the_floor_is_bounded_by_the_u32_burst_numbers(tmp_path) -> None:
    payload = os.urandom(10 * L)
    s, radio = session(tmp_path, payload), StubRadio()
    s.on_burst_done(done(2**32 - 10), radio)
    resume(s, radio)
    (held,) = s.step(radio)
    assert held.last_burst == 2**32 - 1 and isinstance(held, MissingRequest)  # a host refuses to go on from it
    assert s.floor == 2**32  # every u32 number is below it: only what the current host announces is reported
    radio.events = burst_events(payload, 9, 2**32 - 1, 0, 2)
    assert s.step(radio) == [] and s.stale_bursts == 1
    s.on_burst_done(done(2**32 - 1), radio)
    assert shown(s.step(radio)) == [("BurstReport", 2**32 - 1, True)]
