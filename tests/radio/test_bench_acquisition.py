"""radio/bench_acquisition.py: how a lost burst is classified, and one real point far above the threshold."""

import numpy as np

from radio.bench_acquisition import classify, measure
from radio.bler_table import ReceiverLink
from radio.burst_events import RxBurst
from radio.mcs import by_name

SIG = ReceiverLink.plan(by_name("ldpc-bpsk-1/2"), 0, 1).sig


def event(start: int, sig=None) -> RxBurst:
    return RxBurst(start, sig, 0, 0, 0.0, 0.0, 0.0, 0.0, float("nan"), error=None if sig else "SIG: CRC")


def test_classes_of_a_burst_at_sample_5000() -> None:
    assert classify([event(1000), event(5001, SIG)], SIG, 5000) == ("ok", 1)
    assert classify([event(1000)], SIG, 5000) == ("false_alarm", 1)
    assert classify([event(4990)], SIG, 5000) == ("sig", 0)
    assert classify([event(9000)], SIG, 5000) == ("missed", 0)
    assert classify([], SIG, 5000) == ("missed", 0)


def test_every_burst_received_at_6_db() -> None:
    r = measure(by_name("ldpc-bpsk-1/2"), 6.0, 4, 1, seed=2)
    assert r["ok"] == 1.0 and r["missed"] == r["sig"] == r["false_alarm"] == 0.0 and np.isfinite(r["ms_per_burst"])
