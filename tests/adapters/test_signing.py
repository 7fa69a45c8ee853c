"""Signed payloads: round trip, and every forgery (tampered body or manifest, re-packed, unsigned, unknown key,
malformed container) refused with one line before anything in the payload is parsed."""

import os

import numpy as np
import pytest

from adapters import payload as pl
from adapters import signing as sg
from edge_node import payload_reader

IDENTITY = {"name": "m", "sha256": "ab" * 32}
HOST_SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))


def _payload() -> bytes:
    rng = np.random.default_rng(0)
    tensors = {"base_model.model.l.q.lora_A.weight": rng.standard_normal((4, 64)).astype(np.float32),
               "base_model.model.l.q.lora_B.weight": rng.standard_normal((64, 4)).astype(np.float32)}
    manifest = {"model": {**IDENTITY, "num_labels": 2}, "probe": {"texts": ["a"], "logits": [[0.1, 0.2]]},
                "quant": {"scheme": "nf4", "block_size": 64}}
    return pl.encode(manifest, tensors, {k: "nf4" for k in tensors}, 64)


def _trust(*secrets: bytes) -> sg.TrustStore:
    return sg.TrustStore.from_public_keys({f"k{i}": sg.public_key(s) for i, s in enumerate(secrets)}, "trusted/")


def _repack(payload: bytes, mutate) -> bytes:
    """What an attacker without the secret key can do: decode, change, re-encode (fresh SHA-256)."""
    p = pl.decode(payload)
    manifest = {k: v for k, v in p.manifest.items() if k not in ("tensors", "format", "version", "block_size")}
    tensors = dict(p.tensors)
    mutate(manifest, tensors)
    return pl.encode(manifest, tensors, {t["name"]: t["scheme"] for t in p.manifest["tensors"]}, 64)


def _forbid_parsing(monkeypatch) -> None:
    """Fail the test if the edge parses anything of a payload (the signature must be checked first)."""
    def boom(*args, **kwargs):
        raise AssertionError("the payload was parsed before its signature was checked")

    for name in ("decode", "read_manifest"):
        monkeypatch.setattr(payload_reader, name, boom)
    monkeypatch.setattr(pl, "_read", boom)
    monkeypatch.setattr(pl, "parse_header", boom)


@pytest.fixture
def no_parsing(monkeypatch):
    _forbid_parsing(monkeypatch)


def _refused(buf: bytes, trust: sg.TrustStore, match: str, allow_unsigned: bool = False) -> str:
    with pytest.raises(pl.PayloadError, match=match) as exc:
        payload_reader.check_payload(buf, IDENTITY, trust=trust, allow_unsigned=allow_unsigned)
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_sign_verify_round_trip():
    payload = _payload()
    signed = sg.sign(payload, HOST_SECRET)
    assert len(signed) == sg.SIGNED_HEADER_BYTES + len(payload) and sg.is_signed(signed)
    opened = sg.open_payload(signed, _trust(OTHER_SECRET, HOST_SECRET))
    assert opened.payload == payload and opened.signer == "k1"
    assert opened.signed_by == sg.key_id(sg.public_key(HOST_SECRET)) and len(opened.signed_by) == 16
    decoded = payload_reader.check_payload(signed, IDENTITY, trust=_trust(HOST_SECRET))
    assert decoded.signed_by == opened.signed_by and decoded.sha256 == pl.decode(payload).sha256
    assert sg.unwrap_unverified(signed) == payload and sg.unwrap_unverified(payload) == payload
    assert sg.sign(payload, HOST_SECRET) == signed  # Ed25519 is deterministic


def test_tampered_body_and_manifest_are_refused_before_decoding(monkeypatch):
    payload = _payload()
    signed = sg.sign(payload, HOST_SECRET)
    man_len, _, _ = pl.read_header(payload)
    _forbid_parsing(monkeypatch)
    start = sg.SIGNED_HEADER_BYTES + pl.HEADER_BYTES
    for offset in (start + 3, start + man_len + 5, len(signed) - 1, sg.SIGNED_HEADER_BYTES + 30):  # manifest,
        bad = bytearray(signed)                                                                   # body, SHA
        bad[offset] ^= 0x01
        _refused(bytes(bad), _trust(HOST_SECRET), "^bad signature: .* key [0-9a-f]{16} \\(k0\\)")
    bad = bytearray(signed)
    bad[sg.HEADER.size + 3] ^= 0x01  # the signature itself
    _refused(bytes(bad), _trust(HOST_SECRET), "^bad signature")


def test_repacked_payload_is_refused_however_it_is_signed(monkeypatch):
    """The attack of issue 11: zero every lora_B, recompute the probe logits and the SHA-256, re-pack."""
    payload = _payload()
    signed = sg.sign(payload, HOST_SECRET)

    def zero_b(manifest, tensors):
        for k in tensors:
            if "lora_B" in k:
                tensors[k] = np.zeros_like(tensors[k])
        manifest["probe"]["logits"] = [[5.0, -5.0]]

    forged = _repack(payload, zero_b)
    assert pl.decode(forged).manifest["probe"]["logits"] == [[5.0, -5.0]]  # a well-formed payload
    _forbid_parsing(monkeypatch)
    trust = _trust(HOST_SECRET)
    _refused(forged, trust, "^unsigned payload: .*edge.allow_unsigned")
    _refused(sg.sign(forged, OTHER_SECRET), trust, "^payload signed by unknown key [0-9a-f]{16}: not in trusted/")
    # the host's header and signature in front of the attacker's payload (length field fixed up)
    _refused(_with_length(signed[:sg.SIGNED_HEADER_BYTES], len(forged)) + forged, trust, "^bad signature")


def _with_length(signed: bytes, length: int) -> bytes:
    """The container with another payload length in its header (the signature unchanged)."""
    magic, version, flags, kid, _ = sg.HEADER.unpack_from(signed)
    return sg.HEADER.pack(magic, version, flags, kid, length) + signed[sg.HEADER.size:]


def test_unsigned_and_unknown_key(no_parsing):
    payload = _payload()
    _refused(payload, _trust(HOST_SECRET), "^unsigned payload")
    _refused(sg.sign(payload, HOST_SECRET), _trust(), "^payload signed by unknown key .*\\(0 trusted\\)")
    _refused(sg.sign(payload, HOST_SECRET), _trust(OTHER_SECRET), "unknown key")


def test_allow_unsigned_accepts_unsigned_and_unknown_signers_but_never_a_bad_signature():
    payload = _payload()
    trust = _trust(HOST_SECRET)
    for buf in (payload, sg.sign(payload, OTHER_SECRET)):
        decoded = payload_reader.check_payload(buf, IDENTITY, trust=trust, allow_unsigned=True)
        assert decoded.signed_by is None and decoded.sha256 == pl.decode(payload).sha256
    bad = bytearray(sg.sign(payload, HOST_SECRET))
    bad[-1] ^= 0x01
    _refused(bytes(bad), trust, "^bad signature", allow_unsigned=True)


def test_malformed_containers_are_refused_by_the_fixed_header(no_parsing):
    signed = sg.sign(_payload(), HOST_SECRET)
    trust = _trust(HOST_SECRET)
    _refused(b"", trust, "bad magic")
    _refused(b"PK\x03\x04" + signed[4:], trust, "bad magic")
    _refused(signed[:40], trust, "^signed payload is truncated: 40 bytes")
    _refused(signed[:-1], trust, "^signed payload is truncated: it announces")
    _refused(signed + b"x", trust, "trailing bytes")
    _refused(_with_length(signed, 1 << 62), trust, "more than the limit")
    magic, version, flags, kid, length = sg.HEADER.unpack_from(signed)
    _refused(sg.HEADER.pack(magic, 2, flags, kid, length) + signed[sg.HEADER.size:], trust, "version 2")
    _refused(sg.HEADER.pack(magic, version, 1, kid, length) + signed[sg.HEADER.size:], trust, "flags 0x1")


def test_sign_refuses_what_is_not_a_payload():
    with pytest.raises(pl.PayloadError, match="only an adapter payload"):
        sg.sign(os.urandom(100), HOST_SECRET)
    with pytest.raises(pl.PayloadError, match="32 bytes"):
        sg.sign(_payload(), b"short")
    with pytest.raises(pl.PayloadError, match="not a 32-byte"):
        sg.TrustStore.from_public_keys({"x": b"123"})


def test_early_refusal_reads_the_key_id_only():
    signed = sg.sign(_payload(), HOST_SECRET)
    trust = _trust(HOST_SECRET)
    assert payload_reader.early_refusal(signed[:sg.SIGNED_HEADER_BYTES + 10], IDENTITY, trust=trust) is None
    assert "unknown key" in payload_reader.early_refusal(signed[:200], IDENTITY, trust=_trust(OTHER_SECRET))
    assert "unsigned" in payload_reader.early_refusal(_payload()[:200], IDENTITY, trust=trust)
    assert "foreign model" in payload_reader.early_refusal(signed, {"name": "m", "sha256": "cd" * 32}, trust=trust)
