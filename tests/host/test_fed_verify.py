"""An uplinked adapter is aggregated only when it is signed by that edge's own trusted key, unaltered, and made for
the host's base model: corrupted, unsigned, foreign-signed or other-model payloads are refused before decoding."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.payload import encode
from adapters.signing import TrustStore, public_key, sign
from host.fed_experiment import verify_uplink
from ml.adapter import Adapter
from testbed.errors import AirLoraError
from adapters.payload import PayloadError

IDENTITY = {"name": "minilm-l6", "sha256": "ab" * 32}
MODULE = "bert.encoder.layer.0.attention.self.query"


def _payload(identity: dict = IDENTITY) -> bytes:
    rng = np.random.default_rng(0)
    ad = Adapter({MODULE: 2}, {MODULE: 4.0}, {MODULE: rng.normal(size=(2, 384)).astype(np.float32)},
                 {MODULE: rng.normal(size=(384, 2)).astype(np.float32)},
                 {"classifier.weight": rng.normal(size=(2, 384)).astype(np.float32)}, ["classifier"])
    manifest = {"model": {**identity, "num_labels": 2, "max_length": 64, "task": "rotten_tomatoes", "head_seed": 0},
                "peft": {"task_type": "SEQ_CLS", "dropout": 0.0, "modules_to_save": ["classifier"],
                         "modules": {MODULE: {"r": 2, "alpha": 4.0}}},
                "quant": {"scheme": "int8", "block_size": 64},
                "probe": {"texts": ["a"], "logits": [[0.0, 0.0]], "logits_fp32": [[0.0, 0.0]]}, "method": "fed-local"}
    tensors = ad.tensors()
    return encode(manifest, tensors, {k: ("int8" if ".lora_" in k else "fp16") for k in tensors}, 64)


KEYS = {name: bytes([i + 1]) * 32 for i, name in enumerate(("edge-1", "edge-2", "stranger"))}
TRUST = TrustStore.from_public_keys({n: public_key(k) for n, k in KEYS.items() if n != "stranger"})


def test_a_good_uplink_is_taken() -> None:
    adapter, payload = verify_uplink(sign(_payload(), KEYS["edge-1"]), "edge-1", TRUST, IDENTITY, 1 << 25)
    assert adapter.ranks == {MODULE: 2} and sorted(adapter.head) == ["classifier.weight"]
    assert adapter.lora_a[MODULE].shape == (2, 384)


@pytest.mark.parametrize("case, match", [
    ("altered", "bad signature"),
    ("unsigned", "unsigned payload"),
    ("stranger", "unknown key"),
    ("other edge", "not by edge edge-1"),
    ("other model", "trained on base model"),
])
def test_bad_uplinks_are_refused(case: str, match: str) -> None:
    good = sign(_payload(), KEYS["edge-1"])
    buf = {
        "altered": bytes(good[:-10]) + bytes([good[-10] ^ 1]) + bytes(good[-9:]),
        "unsigned": _payload(),
        "stranger": sign(_payload(), KEYS["stranger"]),
        "other edge": sign(_payload(), KEYS["edge-2"]),
        "other model": sign(_payload({"name": "other", "sha256": "cd" * 32}), KEYS["edge-1"]),
    }[case]
    with pytest.raises((AirLoraError, PayloadError), match=match):
        verify_uplink(buf, "edge-1", TRUST, IDENTITY, 1 << 25)


def test_the_fed_link_speaks_frame_v1_whatever_radio_frame_says() -> None:
    from host.fed_experiment import v1_settings
    from radio.link import LinkSettings
    from testbed.config import validate

    for frame, mcs, want in (("v2", "auto", "auto"), ("v2", "ldpc-qpsk-1/2", "auto"), ("v1", "qpsk-1/2", "qpsk-1/2")):
        radio = validate({"radio": {"frame": frame, "mcs": mcs}}).radio
        s = v1_settings(LinkSettings.from_config(radio))
        assert (s.frame, s.mcs) == ("v1", want)
        assert s.packet_payload_bytes == radio.packet_payload_bytes and s.rolloff == radio.rolloff
