"""The codeword interleaver (radio/interleave.py): layout, transmitter, receiver, HARQ, fading gain."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from pydantic import ValidationError

from radio.ber import bicm_capacity
from radio.burst import FLAG_PROBE, codeword_symbols
from radio.burst_decode import local_noise
from radio.burst_rx import STEP_SAMPLES, BurstReceiver
from radio.burst_tx import burst_chunks, burst_symbols_array, burst_waveform
from radio.channel import Channel
from radio.config import RadioConfig
from radio.errors import RadioError
from radio.harq import LlrStore
from radio.interleave import complete_codewords, deinterleave, effective_snr_db, group_codewords, interleave
from radio.link_adaptation import McsSelector, SelectorSettings, fading_prior
from radio.mcs import by_name
from radio.modulation import constellation, map_bits
from radio.transmitter import TX_POWER
from tests.radio.test_burst_rx import FS, ROLLOFF, SETTINGS, SPS, air, assert_delivered, plan_for, receive, single, \
    split

SPAN = 6000  # symbols per group in these tests (the setting radio.interleave_symbols)
IL = replace(SETTINGS, interleave_symbols=SPAN)


def test_symbol_j_of_codeword_i_goes_to_j_d_plus_i_of_its_group_and_back() -> None:
    x = np.arange(7 * 5).reshape(7, 5)
    air_order = interleave(x, 3)  # groups of codewords 0-2, 3-5, 6
    assert np.array_equal(air_order[:15], x[:3].T.ravel())
    assert np.array_equal(air_order[15:30], x[3:6].T.ravel())
    assert np.array_equal(air_order[30:], x[6])
    assert np.array_equal(deinterleave(air_order, 7, 3), x)
    assert np.array_equal(interleave(x, 1), x.ravel()) and np.array_equal(deinterleave(x.ravel(), 7, 1), x)


def test_group_sizes_and_when_a_group_is_complete() -> None:
    assert group_codewords(324, 20000) == 61  # 64-QAM: 61 codewords span 19764 symbols
    assert group_codewords(3888, 2000) == 1 and group_codewords(324, 0) == 1
    # 10 codewords in groups of 4, 4, 2: a group decodes only when its last symbol is in
    assert [complete_codewords(n * 100 + 99, 100, 10, 4) for n in range(10)] == [0, 0, 0, 0, 4, 4, 4, 4, 8, 8]
    assert complete_codewords(1000, 100, 10, 4) == 10
    assert complete_codewords(700, 100, 10, 1) == 7


def test_bad_settings_name_their_key() -> None:
    with pytest.raises(RadioError, match="radio.interleave_symbols"):
        group_codewords(324, -1)
    with pytest.raises(RadioError, match="interleave_symbols"):
        BurstReceiver(FS, SPS, ROLLOFF, interleave_symbols=-5)
    with pytest.raises(ValidationError, match="interleave_symbols"):
        RadioConfig(interleave_symbols=-1)


def test_transmitter_permutes_each_group_and_streams_it_bit_for_bit() -> None:
    plan = plan_for("ldpc-16qam-3/4", [(0, 20), (9000, 9), (400, 2)], 12000)  # a repair burst: MAP, three runs
    data = np.random.default_rng(1).bytes(12000)
    plain, mixed = burst_symbols_array(plan, data, 0), burst_symbols_array(plan, data, SPAN)
    at = plan.layout.codeword_indices().reshape(plan.codewords, -1)
    others = np.ones(plain.size, bool)
    others[at] = False
    assert np.array_equal(plain[others], mixed[others])  # preamble, SIG, MAP, pilots untouched
    per = codeword_symbols(plan.mcs)
    depth = group_codewords(per, SPAN)
    assert depth == 12  # groups of 12, 12, 7 codewords
    got = deinterleave(mixed[at].ravel(), plan.codewords, depth)
    assert np.array_equal(got, plain[at]) and not np.array_equal(mixed[at], plain[at])
    probe = replace(plan, flags=FLAG_PROBE)  # a probe measures the channel block by block: never interleaved
    assert np.array_equal(burst_symbols_array(probe, data, SPAN)[at], burst_symbols_array(probe, data, 0)[at])
    reference = burst_waveform(plan, data, IL)
    assert reference.size == plan.samples(IL)
    for chunk in (SPS, 1001, 1 << 16):
        assert np.array_equal(np.concatenate(list(burst_chunks(plan, data, IL, chunk))), reference)


def test_receiver_decodes_each_group_when_its_last_symbol_arrives() -> None:
    plan = plan_for("ldpc-qpsk-2/3", [(0, 30), (20000, 10), (6000, 5)], 30000)
    data = np.random.default_rng(2).bytes(30000)
    y = air([np.concatenate(list(burst_chunks(plan, data, IL)))], 20.0, cfo_hz=10e3)
    rx = BurstReceiver(FS, SPS, ROLLOFF, interleave_symbols=SPAN)
    events, calls = [], []
    for i in range(0, y.size, STEP_SAMPLES):
        new = rx.feed(y[i:i + STEP_SAMPLES])
        events += new
        calls += [i // STEP_SAMPLES] * len(new)
    events += rx.flush()
    assert_delivered(events, plan, data)
    depth = group_codewords(codeword_symbols(plan.mcs), SPAN)
    assert depth == 6
    layout = plan.layout
    index = [e.index for e in events[:plan.codewords]]
    for g in range(0, plan.codewords, depth):  # a group's codewords come out of the same feed call ...
        assert len(set(calls[index.index(g): index.index(min(g + depth, plan.codewords) - 1) + 1])) == 1
        last = layout.codeword_indices(g, min(depth, plan.codewords - g)).max()  # ... at most two segments late
        assert calls[index.index(g)] * STEP_SAMPLES <= 3000 + (last + 2 * 4096) * SPS


def rician(plan, data, settings, snr_db: float, seed: int) -> np.ndarray:
    x = np.concatenate([np.zeros(3000, np.complex64), *burst_chunks(plan, data, settings),
                        np.zeros(20000, np.complex64)])
    return Channel("rician", snr_db, FS, SPS, TX_POWER, cfo_hz=1e3, seed=seed).apply(x)


def test_interleaving_turns_lost_fading_blocks_into_decodable_codewords() -> None:
    """16qam-1/2 at 12 dB mean SNR through 20 ms Rician K = 6 dB blocks: plain, the codewords of deep blocks
    fail (38 and 59 of 300 for these seeds); spread over 80 ms groups (4 blocks) almost none do."""
    plan, data = single("ldpc-16qam-1/2", 300, seed=2)
    failed = {}
    for span in (0, 20000):
        settings = replace(SETTINGS, interleave_symbols=span)
        total = 0
        for seed in (0, 1):
            codewords, bursts = split(receive(rician(plan, data, settings, 12.0, seed), interleave_symbols=span))
            assert len(codewords) == 300 and bursts[0].error is None
            total += sum(not c.ok for c in codewords)
        failed[span] = total
    assert failed[0] >= 60 and failed[20000] <= failed[0] // 10, failed


def test_harq_combines_interleaved_codewords_with_their_resend() -> None:
    plan, data = single("ldpc-qpsk-1/2", 14)
    store = LlrStore()
    rx = BurstReceiver(FS, SPS, ROLLOFF, harq=store, interleave_symbols=SPAN)
    wave = np.concatenate(list(burst_chunks(plan, data, IL)))
    first, _ = split(receive(air([wave], 0.0, seed=11), rx=rx))
    failed = {c.offset for c in first if not c.ok}
    assert failed and len(store) == len(failed)
    second, _ = split(receive(air([wave], 0.0, seed=12), rx=rx))
    assert {c.offset for c in second if c.combined} == failed
    assert all(c.ok and c.data == data[c.offset: c.offset + c.length] for c in second if c.offset in failed)


def test_effective_snr_is_the_awgn_snr_of_the_mean_mutual_information() -> None:
    flat = effective_snr_db(np.full((1, 50), 10.0), "16qam")
    assert flat[0] == pytest.approx(10.0, abs=0.01)
    halves = np.repeat([[10.0 ** 0.3, 10.0 ** 1.8]], 25, axis=0).T.reshape(1, -1)  # 3 dB and 18 dB
    s = effective_snr_db(halves, "16qam")[0]
    target = (bicm_capacity("16qam", 3.0) + bicm_capacity("16qam", 18.0)) / 2
    assert bicm_capacity("16qam", s) == pytest.approx(target, abs=0.01)
    assert 3.0 < s < 10.0 * np.log10((10.0 ** 0.3 + 10.0 ** 1.8) / 2)  # below the mean power: fades cost more


def test_interleaved_rician_codewords_report_the_effective_snr_of_their_group() -> None:
    """Interleaved codewords of one group share their blocks: their SNRs scatter by under 0.5 dB (std), and each group's
    SNR reads the effective SNR of the channel gains it spanned within 1 dB (what the selector's curves need)."""
    plan, data = single("ldpc-16qam-2/3", 150, seed=5)
    y = rician(plan, data, IL, 15.0, 21)
    gain = Channel("rician", 300.0, FS, SPS, TX_POWER, seed=21).apply(np.ones(y.size, np.complex64))
    codewords, bursts = split(receive(y, interleave_symbols=SPAN))
    assert len(codewords) == 150 and bursts[0].error is None
    depth = group_codewords(codeword_symbols(plan.mcs), SPAN)
    layout = plan.layout
    for g in range(0, 150, depth):
        n = min(depth, 150 - g)
        snrs = np.array([c.snr_db for c in codewords[g:g + n]])
        assert np.std(snrs) < 0.5, snrs
        at = 3000 + layout.codeword_indices(g, n).ravel() * SPS
        truth = effective_snr_db(10.0 ** 1.5 * np.abs(gain[at][None, :]) ** 2, "16qam")[0]
        assert abs(np.median(snrs) - truth) < 1.0, (g, np.median(snrs), truth)


def test_selector_judges_a_fading_probe_by_its_effective_snr_when_bursts_interleave() -> None:
    """A probe's codewords spread over 7 dB (not interleaved: block by block) at about 15 dB: judged per block
    (plain bursts) 16qam-5/6 wins at 15 % BLER. With interleaved bursts each MCS is judged at the Rician prior's
    effective SNR for its modulation: with the probe's mean power taken as exact and no receiver loss,
    64qam-2/3 wins; with the prior 2 dB lower (the probe measures it to +-1.5 dB, and a failed interleaved burst
    loses every codeword) and the receiver's 0.5 dB loss, 16qam-3/4, all but certain to decode."""
    probe = np.array([3, 3, 3, 0, 0, 0, -4, -4, -4, -4, 1.0]) + 15.0
    plain = McsSelector.from_shipped()
    assert plain.pick(probe).name == "ldpc-16qam-5/6" and 0.1 < plain.last_predicted_bler < 0.2
    exact = McsSelector.from_shipped(settings=SelectorSettings(interleaved=True, interleaved_prior_margin_db=0.0,
                                                               interleaved_loss_db=0.0))
    assert exact.pick(probe).name == "ldpc-64qam-2/3"
    s = effective_snr_db(10.0 ** (fading_prior(probe, 6.0)[None, :] / 10.0), "64qam")[0]
    assert exact.last_predicted_bler == pytest.approx(float(exact.predicted_bler(by_name("ldpc-64qam-2/3"), s)))
    mixed = McsSelector.from_shipped(settings=SelectorSettings(interleaved=True))
    assert mixed.pick(probe).name == "ldpc-16qam-3/4"
    s = effective_snr_db(10.0 ** (fading_prior(probe - 2.0, 6.0)[None, :] / 10.0), "16qam")[0] - 0.5
    assert mixed.last_predicted_bler == pytest.approx(float(mixed.predicted_bler(by_name("ldpc-16qam-3/4"), s)))
    assert mixed.last_predicted_bler < 1e-3
    narrow = np.linspace(14.0, 15.5, 40)  # a burst's interleaved codewords (one effective SNR each): as they are
    assert mixed.pick(narrow) == plain.pick(narrow)
    assert mixed.last_predicted_bler == pytest.approx(plain.last_predicted_bler)
    blocks = np.repeat([6.0, 9.0, 15.0, 18.0], 30)  # measured block by block: 16qam-5/6 decodes in half of them,
    fresh = McsSelector.from_shipped(settings=SelectorSettings(interleaved=True))  # interleaved in almost none
    row = fresh.table.index(by_name("ldpc-16qam-5/6"))
    assert fresh.success(blocks)[0][row] == pytest.approx(0.5, abs=0.01)
    assert fresh.ergodic_success(blocks)[0][row] < 0.02


def test_local_noise_weakens_only_the_symbols_the_tracker_mis_equalized() -> None:
    """16-QAM at 20 dB: the first 300 symbols equalized right keep about the model variance (32-symbol windows
    read it within +-25 %); the last 200 carry a 25 % gain error (a fade the tracker has not seen yet) and get
    their decision error energy instead, which makes their LLRs weak rather than confidently wrong."""
    c = constellation("16qam")
    rng = np.random.default_rng(3)
    x = map_bits(rng.integers(0, 2, 2000).astype(np.uint8), c)
    nv = np.full((1, 500), 0.01, np.float32)
    z = x + np.sqrt(0.005) * (rng.standard_normal(500) + 1j * rng.standard_normal(500))
    z[300:] *= 1.25
    out = local_noise(z[None, :].astype(np.complex64), nv, c)
    assert np.all(out[0, :280] >= nv[0, :280]) and out[0, :280].max() < 1.3 * 0.01
    assert np.median(out[0, :280]) < 1.05 * 0.01
    assert np.median(out[0, 320:]) > 3 * 0.01
