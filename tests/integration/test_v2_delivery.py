"""Frame v2 over the real control plane (issue 16, design link_v2 step 10): a real `airlora edge` process, the
host's Sender in this process over a real ControlClient and ZmqTxBackend, real signed adapter payloads of a
random-init tiny BERT (test_closed_loop_faults's lab), installed and checked on disk.
"""

from __future__ import annotations

import os
import time

import pytest
import yaml

from testbed.config import validate
from testbed.messages import CAPABILITY_FRAME_V2

from test_closed_loop_faults import Lab, assert_applied, tiny  # noqa: F401 (tiny: the module's payload fixture)


class V2Lab(Lab):
    """The faults lab with the host on radio.frame v2 and extra radio / edge settings."""

    def __init__(self, tmp_path, tiny, radio: dict | None = None, edge: dict | None = None,
                 channel: dict | None = None) -> None:
        super().__init__(tmp_path, tiny, channel=channel)
        raw = yaml.safe_load(self.config_path.read_text())
        raw["radio"].update({"frame": "v2", **(radio or {})})
        raw["edge"].update(edge or {})
        self.cfg = validate(raw)
        self.config_path.write_text(yaml.safe_dump(raw))


@pytest.fixture
def lab(tmp_path, tiny):  # noqa: F811
    made = []

    def make(**kw) -> V2Lab:
        made.append(V2Lab(tmp_path, tiny, **kw))
        return made[-1]

    yield make
    for each in made:
        each.close()


def test_v2_delivery_over_the_zmq_cable_installs_the_adapter_from_a_spilled_payload(lab) -> None:
    lab = lab(edge={"reassembly_memory_bytes": 1024})  # the payload arrives in a spill file
    A = lab.payloads["A"]
    lab.start_edge("edge-1")
    host = lab.host()
    assert CAPABILITY_FRAME_V2 in host.client.peer_hello.capabilities
    d = host.deliver(A.data, 2)
    assert_applied(d, A)
    lab.assert_installed(A)
    assert d.frame == "v2" and d.mcs_per_burst[0] == "ldpc-qpsk-1/2" and d.timeouts == 0
    assert len(d.burst_reports) == d.bursts and all(r.detected for r in d.burst_reports)
    assert 17.0 < d.snr_db_measured < 23.0  # channel at 20 dB
    assert list((lab.adapter_dir / ".reassembly").iterdir()) == []  # the spill file went with the session


def test_selective_repeat_per_codeword_at_low_snr_delivers(lab) -> None:
    # ldpc-16qam-1/2 at 6.4 dB: a first-pass codeword error rate of roughly 0.3 (radio/mcs_bler_curves.json)
    lab = lab(radio={"mcs": "ldpc-16qam-1/2"}, channel={"snr_db": 6.4})
    B = lab.payloads["B"]
    lab.start_edge("edge-1")
    host = lab.host()
    d = host.deliver(B.data, 2)
    assert_applied(d, B)
    lab.assert_installed(B)
    failed = sum(r.codewords_failed for r in d.burst_reports)
    first_pass = -(-len(B.data) // 119)  # 119 payload bytes per rate-1/2 codeword (the probe's too)
    sizes = {f["burst"]: f["codewords"] for k, f in host.events if k == "burst"}
    timed_out = sum(sizes[f["burst"]] for k, f in host.events if k == "report_timeout")  # a loaded machine's
    print(f"payload {len(B.data)} B: {first_pass} codewords a pass, {d.codewords_sent} sent in {d.bursts} bursts, "
          f"{failed} failed, {timed_out} in bursts whose report came late")
    assert failed > 0 and d.bursts >= 3  # probe, first pass, at least one repair burst
    assert d.codewords_sent <= first_pass + failed + timed_out  # only what failed was sent again
    assert any(r.harq_stored > 0 for r in d.burst_reports)  # failed codewords kept for chase combining
    assert [r.burst for r in d.burst_reports] == sorted(r.burst for r in d.burst_reports)


def test_edge_killed_mid_transfer_resumes_after_restart(lab) -> None:
    lab = lab(radio={"burst_airtime_s": 0.05, "mcs": "ldpc-qpsk-1/2"})  # many short bursts
    B = lab.payloads["B"]
    lab.start_edge("edge-1")
    host = lab.host()
    seen = {}

    def kill(kind: str, **f) -> None:
        if kind == "burst" and f["burst"] == 3 and "killed" not in seen:
            seen["killed"] = {"live": lab.live_version(), "leftovers": lab.leftovers()}
            lab.kill_edge()
            lab.start_edge("edge-2")

    host.on_event = kill
    d = host.deliver(B.data, 3)
    assert seen["killed"] == {"live": None, "leftovers": []}
    assert d.edge_restarts >= 1 and [f["restarted"] for k, f in host.events if k == "edge_back"][-1] is True
    assert_applied(d, B)
    lab.assert_installed(B)
    assert host.client.peer_hello.node_id == "edge-2"


class HostCrash(Exception):
    pass


def test_a_restarted_host_resuming_the_session_sends_only_what_the_edge_lacks(lab) -> None:
    lab = lab(radio={"burst_airtime_s": 0.05, "mcs": "ldpc-qpsk-1/2"})  # many short bursts, 119 B a codeword
    B = lab.payloads["B"]
    lab.start_edge("edge-1")
    first = lab.host()

    def crash(kind: str, **f) -> None:
        if kind == "burst" and f["burst"] == 3:
            raise HostCrash  # mid-transfer: the burst is out, no BurstDone, no Bye
    first.on_event = crash
    with pytest.raises(HostCrash):
        first.deliver(B.data, 3)
    sent_first = sum(f["codewords"] for k, f in first.events if k == "burst")
    first.close()
    lab.hosts.remove(first)
    time.sleep(1.0)  # the edge decodes what was on the cable

    second = lab.host()  # a new client and transmitter stream, the same session and payload: a resume
    d = second.deliver(B.data, 3)
    assert_applied(d, B)
    lab.assert_installed(B)
    held_list = next(f for k, f in second.events if k == "missing")
    assert held_list["through"] is None  # the edge's answer to the resume: what it lacks
    lacked, last_burst = held_list["missing"], held_list["last_burst"]
    bursts = [f for k, f in second.events if k == "burst"]
    timed_out = sum(f["codewords"] for f in bursts if f["burst"] in
                    {g["burst"] for k, g in second.events if k == "report_timeout"})  # a loaded machine's
    print(f"payload {len(B.data)} B; the first host sent {sent_first} codewords before it crashed; the edge lacked "
          f"{lacked} B at the resume (last_burst {last_burst}); the second host sent {d.codewords_sent} codewords "
          f"({d.bursts} bursts: {[f['burst'] for f in bursts]}, reports of {[r.burst for r in d.burst_reports]}), "
          f"{timed_out} in bursts whose report came late")
    assert 0 < lacked <= len(B.data) - 10 * 119  # the edge held what the first host's bursts carried
    # Numbered past every burst the edge saw (the probe went before the held list came): the dead host's burst 3,
    # decoded after the resume, settles none of the second host's: it sends what the held list lacked, and the probe.
    assert last_burst >= 3 and bursts[0]["burst"] == 0 and all(f["burst"] > last_burst for f in bursts[1:])
    assert [r.burst for r in d.burst_reports] == [f["burst"] for f in bursts]  # nor is it reported to it
    assert d.codewords_sent <= -(-lacked // 119) + 1 + bursts[0]["codewords"] + timed_out


def test_a_v1_only_edge_gets_v1_from_a_v2_host_and_installs(lab) -> None:
    lab = lab(edge={"frames": ["v1"]})
    A = lab.payloads["A"]
    lab.start_edge("edge-old")
    host = lab.host()
    assert CAPABILITY_FRAME_V2 not in host.client.peer_hello.capabilities
    d = host.deliver(A.data, 2)
    assert_applied(d, A)
    lab.assert_installed(A)
    assert d.frame == "v1" and d.snr_reports and not d.burst_reports and "frame_fallback" in host.kinds()


@pytest.mark.parametrize("backend", ["zmq", "pluto"])
def test_airlora_run_with_frame_v2_delivers_and_installs(tmp_path, backend) -> None:
    """`airlora run` end to end with radio.frame v2 over testbed.yaml's backend (the zmq cable) and over the
    emulated Pluto pair (each crystal drawn within +-25 ppm: CFO and SCO), a local edge process: each round's
    sounding and adapter travel as LDPC bursts."""
    import json
    import subprocess
    import sys

    from ml.tiny import make_tiny_model
    from test_closed_loop_faults import ROOT, free_port

    model = make_tiny_model(tmp_path / "tiny-bert", "bert")
    raw = {
        "model": {"name": str(model), "max_length": 32, "cache_dir": str(tmp_path / "cache")},
        "data": {"task": "bbc_news", "train_size": 16, "val_size": 8, "test_size": 10, "probe_count": 2},
        "finetune": {"steps": 1, "batch_size": 8, "lr": 5e-3, "quant": "int8"},
        "radio": {"backend": backend, "frame": "v2", "zmq": {"endpoint": f"tcp://127.0.0.1:{free_port()}"},
                  "pluto": {"emulated_ppm": None}},
        "channel": {"seed": 5},
        "control": {"endpoint": f"tcp://127.0.0.1:{free_port()}", "heartbeat_s": 0.2,
                    "curve": {"keys_dir": str(tmp_path / "keys")}},
        "edge": {"adapter_dir": str(tmp_path / "edge")},
        "run": {"rounds": 2, "snr_db_rounds": [20.0, 8.0], "steps": 1, "out_dir": str(tmp_path / "runs")},
    }
    config_file = tmp_path / "testbed.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    out = subprocess.run([sys.executable, "-m", "airlora.cli", "run", "--config", str(config_file), "--json"],
                         cwd=ROOT, env=dict(os.environ, HF_HUB_OFFLINE="1"), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rounds = json.loads(out.stdout.strip().splitlines()[-1])["rounds"]
    assert [r["frame"] for r in rounds] == ["v2", "v2"] and all(r["delivered"] and r["installed"] for r in rounds)
    assert all(r["mcs"].startswith("ldpc-") for r in rounds)
    assert 17.0 < rounds[0]["snr_db_measured"] < 23.0 and 5.0 < rounds[1]["snr_db_measured"] < 11.0
    assert rounds[0]["mcs"] != rounds[1]["mcs"]  # the MCS follows the measured SNR


def test_v2_over_the_emulated_pluto_pair_with_crystal_offsets(lab) -> None:
    # two emulated Plutos 12 ppm apart (11 kHz CFO at 915 MHz and 12 ppm SCO, locked clocks); the edge reads in
    # real time
    lab = lab(radio={"backend": "pluto", "pluto": {"emulated_ppm": 12.0}})
    A = lab.payloads["A"]
    lab.start_edge("edge-pluto")
    host = lab.host()
    d = host.deliver(A.data, 2)
    assert_applied(d, A)
    lab.assert_installed(A)
    detected = [r for r in d.burst_reports if r.detected]
    assert d.frame == "v2" and detected
    assert all(abs(r.cfo_hz - 12e-6 * 915e6) < 2e3 for r in detected), [r.cfo_hz for r in detected]


@pytest.mark.parametrize("payload_bytes", [100_000, 1_000_000])
def test_wall_time_stays_near_airtime_with_the_cable_paced_at_the_sample_rate(lab, payload_bytes) -> None:
    """The pipelined sender keeps the air busy: with samples played at the sample rate (as a real radio's DAC
    does), a delivery takes little more wall time than its airtime (the goal is 1.1x)."""
    from host.paced_tx import PacedTx

    lab = lab()
    lab.start_edge("edge-1")
    host = lab.host()
    paced = host.sender.tx = PacedTx(host.tx)
    host.sound(1)  # the edge's receiver and the host's modulator warm
    t0 = time.monotonic()
    d = host.deliver(os.urandom(payload_bytes), 2, apply=False)
    airtime = d.airtime_s(lab.cfg.radio.sample_rate_hz)
    # the emulated device returns up to one buffer before it has played it: the delivery ends no earlier
    # than the air does
    wall = max(d.wall_s, paced.air_end_s - t0)
    print(f"{payload_bytes} B: airtime {airtime:.3f} s, wall {wall:.3f} s (host {d.wall_s:.3f} s), ratio "
          f"{wall / airtime:.3f}, {d.bursts} bursts {d.mcs_per_burst}, timeouts {d.timeouts}")
    assert d.delivered and d.timeouts == 0
    assert wall < 1.1 * airtime + 0.15  # (+0.15 s: a loaded CI machine's scheduling)


def test_an_unsigned_payload_delivered_over_v2_is_refused_and_nothing_changes(lab) -> None:
    from adapters.signing import unwrap_unverified

    lab = lab(edge={"reassembly_memory_bytes": 1024})  # spilled: the refusal comes from the file's bytes
    A = lab.payloads["A"]
    lab.start_edge("edge-1")
    host = lab.host()
    assert_applied(host.deliver(A.data, 2), A)
    d = host.deliver(unwrap_unverified(lab.payloads["B"].data), 3)  # B's bytes without the signature
    assert d.delivered and d.frame == "v2" and d.apply is not None and not d.apply.installed
    assert "unsigned payload" in d.apply.reason
    lab.assert_installed(A)
    assert lab.versions() == {A.version} and lab.leftovers() == []
    assert list((lab.adapter_dir / ".reassembly").iterdir()) == []
