"""`airlora link` over the sim backend: every byte delivered, MCS rising with SNR, figures reported honestly."""

from __future__ import annotations

import json

import pytest

from radio.mcs import by_name
from airlora.cli import main


def link_json(capsys, snr_db: float, channel: str = "awgn") -> dict:
    code = main(["link", "--snr-db", str(snr_db), "--bytes", "30000", "--seed", "2", "--channel", channel,
                 "--cfo-hz", "2000", "--sco-ppm", "0", "--frame", "v1", "--json"])
    # v1's packet figures (v2's: test_link_v2.py), without the default 20 ppm SCO: a v1 packet is not tracked
    # in time, and bpsk-1/4's 1 kB packet (131k samples) slips 2.6 samples at 20 ppm
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    return out


@pytest.mark.parametrize("channel", ["awgn", "rician"])
def test_link_delivers_at_0_10_25_db_with_mcs_rising(capsys, channel: str) -> None:
    runs = [link_json(capsys, s, channel) for s in (0.0, 10.0, 25.0)]
    rates = []
    for snr, r in zip((0.0, 10.0, 25.0), runs):
        assert r["delivered"] is True and r["snr_db_set"] == snr
        assert r["packets_ok"] == r["packets_total"] == 30
        assert r["packets_retransmitted"] == r["packets_sent"] - r["packets_total"] >= 0
        assert r["airtime_s"] == pytest.approx(r["samples_sent"] / 1e6)
        assert r["goodput_bps"] == pytest.approx(8 * 30000 / r["airtime_s"])
        assert r["efficiency"] == pytest.approx(r["goodput_bps"] / r["shannon_bps"])
        assert len(r["snr_db_packets"]) >= 30
        if channel == "awgn":
            assert abs(r["snr_db_measured"] - snr) < 0.5
        rates.append(by_name(r["mcs"]).info_bits_per_symbol)
    assert rates[0] < rates[1] < rates[2]


def test_link_sco_ppm_reaches_the_channel_and_the_report(capsys) -> None:
    code = main(["link", "--snr-db", "25", "--bytes", "3000", "--seed", "4", "--sco-ppm", "10", "--cfo-hz", "300",
                 "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["delivered"]
    assert (out["sco_ppm_set"], out["cfo_hz_set"]) == (10.0, 300.0)
    assert main(["link", "--sco-ppm", "500", "--json"]) == 2  # out of the config's +-200 ppm
    assert "channel.sco_ppm: 500.0 is out of range" in capsys.readouterr().err
