"""The v2 airtime closed forms (radio/airtime.py) against what the burst generator really emits."""

from __future__ import annotations

import time

import numpy as np
import pytest

from radio import airtime
from radio.burst_tx import BurstPlan, CodewordRun, burst_chunks
from radio.link import LinkSettings
from radio.mcs import LDPC_MCS_TABLE, by_name

SETTINGS = LinkSettings(1.0e6, 4, 0.15)


def test_closed_form_equals_generated_samples_for_200_random_plans() -> None:
    rng = np.random.default_rng(8)
    payload = rng.integers(0, 256, 40_000, dtype=np.uint8).tobytes()
    maps = set()
    for _ in range(200):
        mcs = LDPC_MCS_TABLE[int(rng.integers(len(LDPC_MCS_TABLE)))]
        settings = LinkSettings(1.0e6, int(rng.choice([2, 4, 8])), float(rng.choice([0.1, 0.15, 0.25, 0.35])))
        size = airtime.codeword_bytes(mcs)
        n_runs = int(rng.choice([1, 2, 5, 30]))
        counts = rng.integers(1, 6 if n_runs > 2 else 40, n_runs)
        offsets = rng.integers(0, len(payload) - size * counts + 1)
        plan = BurstPlan(1, 2, mcs, tuple(CodewordRun(int(o), int(c)) for o, c in zip(offsets, counts)), len(payload))
        maps.add(plan.map_codewords)
        generated = sum(chunk.size for chunk in burst_chunks(plan, payload, settings, int(rng.integers(1000, 20_000))))
        assert airtime.burst_samples_v2(settings, mcs, plan.codewords, plan.map_codewords) == generated
    assert {0, 1} <= maps and max(maps) >= 2  # single runs, one MAP codeword and several


def test_burst_symbols_by_hand_and_samples_add_the_filter_tails() -> None:
    mcs = by_name("ldpc-bpsk-1/4")
    # content 856 + 2 MAP x 1296 + 3 x 3888 = 15112 -> 60 periods of 252 -> 60 + 1 pilot groups
    assert airtime.burst_symbols(mcs, 3, 2) == 256 + 15112 + 4 * 61 + 16 == 15628
    assert airtime.burst_samples_v2(LinkSettings(1e6, 8, 0.25), mcs, 3, 2) == 15628 * 8 + 192


@pytest.mark.parametrize("name, low, high", [("ldpc-256qam-5/6", 3.1, 3.4), ("ldpc-qpsk-1/2", 3.9, 4.2),
                                             ("ldpc-bpsk-1/4", 3.9, 4.2)])
def test_overhead_of_a_one_second_burst(name: str, low: float, high: float) -> None:
    """Preamble, SIG, pilots, gap, CRC and filler against the MCS's nominal bits per symbol (design: 3.4 / 4.2 %)."""
    mcs = by_name(name)
    n = airtime.max_burst_codewords(SETTINGS, mcs, 1.0)
    bits = 8 * n * airtime.codeword_bytes(mcs)
    overhead = 1.0 - bits / (airtime.burst_symbols(mcs, n) * mcs.info_bits_per_symbol)
    assert low < 100 * overhead < high


@pytest.mark.parametrize("airtime_s", [0.05, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("mcs", LDPC_MCS_TABLE[::3], ids=lambda m: m.name)
def test_pass_bursts_fill_the_airtime_and_cover_the_payload(mcs, airtime_s: float) -> None:
    fs = SETTINGS.sample_rate_hz
    full, per, last = airtime.pass_bursts(3_000_000, mcs, SETTINGS, airtime_s)
    assert full * per + last == -(-3_000_000 // airtime.codeword_bytes(mcs)) and 0 <= last < per
    samples = airtime.burst_samples_v2
    assert samples(SETTINGS, mcs, per) <= airtime_s * fs < samples(SETTINGS, mcs, per + 1)
    per_map = airtime.max_burst_codewords(SETTINGS, mcs, airtime_s, map_codewords=3)  # a repair burst's room
    assert per_map < per
    assert samples(SETTINGS, mcs, per_map, 3) <= airtime_s * fs < samples(SETTINGS, mcs, per_map + 1, 3)


def test_pass_bursts_is_constant_time_and_clamps() -> None:
    mcs = by_name("ldpc-256qam-5/6")
    t0 = time.perf_counter()
    full, per, last = airtime.pass_bursts(10**13, mcs, SETTINGS, 1.0)
    assert time.perf_counter() - t0 < 1.0 and full * per + last == 5 * 10**10  # a walk over 5e10 codewords: hours
    assert airtime.pass_bursts(0, mcs, SETTINGS, 1.0)[::2] == (0, 0)
    assert airtime.pass_bursts(100, by_name("ldpc-bpsk-1/4"), SETTINGS, 0.001) == (1, 1, 0)  # one codeword at least
    fast = LinkSettings(20e6, 2, 0.15)
    assert airtime.pass_bursts(10**9, mcs, fast, 2.0)[1] == 65535  # the SIG's u16


def test_map_codewords_for_runs_planning_figure() -> None:
    assert [airtime.map_codewords_for_runs(n) for n in (0, 1, 2, 12, 13, 4096)] == [0, 0, 1, 1, 2, 342]


@pytest.mark.parametrize("name, size", [("ldpc-bpsk-1/2", 119), ("ldpc-64qam-2/3", 160), ("ldpc-qpsk-3/4", 180),
                                        ("ldpc-256qam-5/6", 200)])
def test_codeword_bytes(name: str, size: int) -> None:
    assert airtime.codeword_bytes(by_name(name)) == size
