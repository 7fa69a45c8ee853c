"""Host payload -> edge apply on a tiny BERT: install, plain-peft reload, and every refusal keeps the old adapter.

Payloads are signed with a host key generated on first use in a test keys folder (the embedded default's path)
and trusted there; the edge's trust store is that folder's trusted/."""

import argparse
import json

import numpy as np
import pytest
import yaml

from edge_node.install import current_adapter
from edge_node.pipeline import apply_payload
from edge_node.verify import PROBE_TOLERANCE
from adapters import payload as pl
from adapters.signing import sign, unwrap_unverified
from host.pipeline import finetune_and_pack
from testbed.config import validate
from testbed.keys import host_signing_secret

KEYS: dict[str, str] = {}  # the module's keys folder (set by the `keys` fixture)


def _cfg(model_dir, root, edge=None, **finetune):
    return validate({
        "model": {"name": str(model_dir), "max_length": 32, "cache_dir": str(root / "cache")},
        "data": {"task": "bbc_news", "train_size": 96, "val_size": 0, "test_size": 40, "probe_count": 3},
        "finetune": {"ranks": "uniform:4", "steps": 8, "batch_size": 8, "lr": 5e-3, "quant": "nf4", **finetune},
        "edge": {"adapter_dir": str(root / "edge"), **(edge or {})},
        "control": {"curve": {"keys_dir": KEYS["dir"]}},
    })


@pytest.fixture(scope="module", autouse=True)
def keys(tmp_path_factory):
    KEYS["dir"] = str(tmp_path_factory.mktemp("keys"))
    return KEYS["dir"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("apply")


@pytest.fixture(scope="module")
def secret(tiny_bert_module, root):
    """The host's signing key, generated on first use (and trusted for this machine's edge)."""
    return host_signing_secret(_cfg(tiny_bert_module, root))[0]


@pytest.fixture(scope="module")
def packed(tiny_bert_module, root, secret):
    """{quant: (signed payload, report)} for the tiny BERT, trained once per scheme."""
    cfg = _cfg(tiny_bert_module, root)
    return {q: finetune_and_pack(cfg, quant=q, signing_key=secret) for q in ("none", "fp16", "int8", "nf4", "fp4")}


@pytest.fixture(scope="module")
def tiny_bert_module(tmp_path_factory):
    from ml.tiny import make_tiny_model
    return make_tiny_model(tmp_path_factory.mktemp("m") / "tiny-bert", "bert")


@pytest.mark.parametrize("quant", ["none", "fp16", "int8", "nf4", "fp4"])
def test_apply_installs_and_reproduces_host(packed, tiny_bert_module, tmp_path, quant):
    payload, host = packed[quant]
    cfg = _cfg(tiny_bert_module, tmp_path)
    report = apply_payload(cfg, payload)
    assert report.installed, report.reason
    assert report.signed_by == host["signed_by"] and len(report.signed_by) == 16
    assert report.probe_max_abs_err <= PROBE_TOLERANCE[quant]
    assert report.accuracy == pytest.approx(host["accuracy_after_quant"])
    assert host["payload_bytes"] == len(payload)
    assert str(current_adapter(cfg.edge.adapter_dir)) == report.adapter_dir and report.adapter_dir


def test_installed_folder_loads_with_plain_peft(packed, tiny_bert_module, tmp_path):
    from peft import PeftModel

    from ml.evaluate import logits
    from ml.models import load_classifier

    payload, _ = packed["int8"]
    cfg = _cfg(tiny_bert_module, tmp_path)
    folder = apply_payload(cfg, payload, evaluate=False).adapter_dir
    manifest = pl.read_manifest(unwrap_unverified(payload))
    base, tok = load_classifier(cfg.model, 5)
    model = PeftModel.from_pretrained(base, folder)
    got = logits(model, tok, manifest["probe"]["texts"], 32)
    assert np.abs(got - np.array(manifest["probe"]["logits"])).max() <= PROBE_TOLERANCE["int8"]
    conf = json.loads((current_adapter(cfg.edge.adapter_dir) / "adapter_config.json").read_text())
    assert conf["peft_type"] == "LORA" and conf["modules_to_save"] == ["classifier"]


def _bad_payloads(payload):
    flipped = bytearray(payload)
    flipped[len(payload) // 2] ^= 0x10
    return {"truncated": (payload[: len(payload) - 100], "truncated"),
            "bit-flipped": (bytes(flipped), "bad signature"),
            "empty": (b"", "bad magic")}


def test_corrupt_payloads_are_refused_and_previous_adapter_stays(packed, tiny_bert_module, tmp_path):
    cfg = _cfg(tiny_bert_module, tmp_path)
    good = apply_payload(cfg, packed["nf4"][0], evaluate=False)
    for name, (bad, why) in _bad_payloads(packed["fp16"][0]).items():
        report = apply_payload(cfg, bad)
        assert not report.installed and why in report.reason, (name, report)
        assert report.adapter_dir == good.adapter_dir == str(current_adapter(cfg.edge.adapter_dir))
    assert not [p for p in current_adapter(cfg.edge.adapter_dir).parent.parent.iterdir() if "staging" in p.name]


def test_foreign_model_is_refused(packed, tmp_path):
    from ml.tiny import make_tiny_model

    other = make_tiny_model(tmp_path / "tiny-bert", "bert", seed=1)  # same name, different weights
    cfg = _cfg(other, tmp_path)
    report = apply_payload(cfg, packed["nf4"][0])
    assert not report.installed and "foreign model" in report.reason
    assert current_adapter(cfg.edge.adapter_dir) is None


def test_wrong_tensors_with_valid_sha_fail_the_probe(packed, tiny_bert_module, tmp_path, secret):
    """A host bug (signed, but tensors that do not give the manifest's probe logits): the probe refuses it."""
    cfg = _cfg(tiny_bert_module, tmp_path)
    previous = apply_payload(cfg, packed["none"][0], evaluate=False).adapter_dir
    payload, _ = packed["nf4"]
    p = pl.decode(unwrap_unverified(payload))
    tensors = {k: (v + 0.5 if k.endswith("classifier.bias") else v) for k, v in p.tensors.items()}
    schemes = {t["name"]: t["scheme"] for t in p.manifest["tensors"]}
    manifest = {k: v for k, v in p.manifest.items() if k not in ("tensors", "format", "version", "block_size")}
    forged = sign(pl.encode(manifest, tensors, schemes, 64), secret)
    report = apply_payload(cfg, forged)
    assert not report.installed and report.stage == "verify" and "probe logits differ" in report.reason
    assert str(current_adapter(cfg.edge.adapter_dir)) == previous


def test_format_1_payload_still_installs(tiny_bert_module, tmp_path, secret):
    """double_quant=False packs format 1 (fp32 block scales, plain manifest), as earlier hosts did: it installs."""
    cfg = _cfg(tiny_bert_module, tmp_path)
    payload, host = finetune_and_pack(cfg, quant="nf4", double_quant=False, signing_key=secret)
    assert pl.parse_header(unwrap_unverified(payload)).version == 1 and host["double_quant"] is False
    report = apply_payload(cfg, payload)
    assert report.installed, report.reason
    assert report.probe_max_abs_err <= PROBE_TOLERANCE["nf4"]


def test_adalora_payload_applies(tiny_bert_module, tmp_path, secret):
    cfg = _cfg(tiny_bert_module, tmp_path, steps=10)
    payload, report = finetune_and_pack(cfg, adalora_target_rank=2, signing_key=secret)
    assert report["method"] == "adalora:2" and any(report["ranks"].values())
    assert all(0 <= r <= 3 for r in report["ranks"].values())
    assert apply_payload(cfg, payload).installed


def test_commands_print_the_contract_keys(tiny_bert_module, tmp_path, capsys):
    from airlora.commands import apply, finetune

    cfg = _cfg(tiny_bert_module, tmp_path)
    cfg_file = tmp_path / "testbed.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg.model_dump()))
    p = argparse.ArgumentParser()
    finetune.add_arguments(p)
    out = tmp_path / "p.bin"
    assert finetune.run(p.parse_args(["--config", str(cfg_file), "--ranks", "uniform:2", "--quant", "int8",
                                      "--steps", "4", "--out", str(out), "--json"])) == 0
    rep = json.loads(capsys.readouterr().out)
    for key in ("accuracy_before", "accuracy_after", "trainable_params", "ranks", "payload_bytes", "fp32_bytes",
                "quant", "train_s"):
        assert key in rep
    assert rep["payload_bytes"] == out.stat().st_size and set(rep["ranks"].values()) == {2}
    p = argparse.ArgumentParser()
    apply.add_arguments(p)
    assert apply.run(p.parse_args([str(out), "--config", str(cfg_file), "--json"])) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["installed"] is True and {"adapter_dir", "probe_max_abs_err", "accuracy"} <= set(rep)
    assert rep["signed_by"] and rep["signed_by"] == json.loads((current_adapter(cfg.edge.adapter_dir) /
                                                                "airlora_manifest.json").read_text())["signed_by"]
    out.write_bytes(out.read_bytes()[:-1])
    assert apply.run(p.parse_args([str(out), "--config", str(cfg_file), "--json"])) != 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["installed"] is False and "truncated" in rep["reason"] and rep["adapter_dir"]



def test_body_size_is_known_before_training(packed):
    for quant, (signed, _) in packed.items():
        payload = unwrap_unverified(signed)
        p = pl.decode(payload)
        ranks = {m: v["r"] for m, v in p.manifest["peft"]["modules"].items()}
        shapes = {m: (p.tensors[f"base_model.model.{m}.lora_B.weight"].shape[0],
                      p.tensors[f"base_model.model.{m}.lora_A.weight"].shape[1]) for m in ranks}
        lora = sum(pl.tensor_nbytes(t["shape"], t["scheme"], 64)
                   for t in p.manifest["tensors"] if ".lora_" in t["name"])
        assert pl.HEADER_BYTES + pl.read_header(payload)[0] + lora + sum(
            pl.tensor_nbytes(v.shape, "none" if quant == "none" else "fp16", 64)
            for k, v in p.tensors.items() if ".lora_" not in k) == len(payload)
        assert pl.lora_body_bytes(ranks, shapes, quant, 64) == lora


def _disk(root) -> dict:
    """Every entry under a folder with its content (files), target (links) and mtime."""
    import os

    out = {".": root.stat().st_mtime_ns} if root.exists() else {}
    for p in sorted(root.rglob("*")) if root.exists() else []:
        st = os.lstat(p)
        content = os.readlink(p) if p.is_symlink() else (p.read_bytes() if p.is_file() else None)
        out[str(p.relative_to(root))] = (content, st.st_mtime_ns)
    return out


def test_unsigned_and_unknown_signer_are_refused_and_write_nothing(packed, tiny_bert_module, tmp_path):
    cfg = _cfg(tiny_bert_module, tmp_path)
    edge_root = tmp_path / "edge"
    unsigned = unwrap_unverified(packed["nf4"][0])
    report = apply_payload(cfg, unsigned)
    assert not report.installed and report.stage == "check" and report.reason.startswith("unsigned payload")
    assert not edge_root.exists()  # a refusal creates nothing, not even the adapter folder
    apply_payload(cfg, packed["int8"][0], evaluate=False)
    before = _disk(edge_root)
    other = tmp_path / "stranger"
    stranger = _cfg(tiny_bert_module, tmp_path, edge={"trusted_keys_dir": str(other)})
    for payload, why in ((unsigned, "unsigned payload"), (packed["fp4"][0], "signed by unknown key")):
        report = apply_payload(stranger, payload)
        assert not report.installed and report.stage == "check" and why in report.reason, report.reason
        assert str(other) in report.reason and "\n" not in report.reason
    assert _disk(edge_root) == before


def test_allow_unsigned_installs_but_pruning_keeps_the_last_signed_version(packed, tiny_bert_module, tmp_path,
                                                                           capsys):
    from airlora.commands import apply

    cfg = _cfg(tiny_bert_module, tmp_path, edge={"keep_previous": 2})
    signed = apply_payload(cfg, packed["nf4"][0], evaluate=False)
    assert signed.installed and signed.signed_by
    lab_version = current_adapter(cfg.edge.adapter_dir).name
    loose = _cfg(tiny_bert_module, tmp_path, edge={"keep_previous": 2, "allow_unsigned": True})
    for quant in ("none", "fp16", "int8"):  # three unsigned installs: more than keep_previous
        report = apply_payload(loose, unwrap_unverified(packed[quant][0]), evaluate=False)
        assert report.installed and report.signed_by is None, report.reason
    versions = {p.name for p in (tmp_path / "edge" / "versions").iterdir()}
    assert lab_version in versions and len(versions) == 2  # the live unsigned one and the lab's signed one
    assert current_adapter(cfg.edge.adapter_dir).name != lab_version

    # `airlora apply`: refuses an unsigned file unless told --allow-unsigned
    cfg_file = tmp_path / "testbed.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg.model_dump()))
    out = tmp_path / "unsigned.bin"
    out.write_bytes(unwrap_unverified(packed["fp4"][0]))
    p = argparse.ArgumentParser()
    apply.add_arguments(p)
    assert apply.run(p.parse_args([str(out), "--config", str(cfg_file), "--no-eval"])) == 3
    assert "refused: unsigned payload" in capsys.readouterr().out
    assert apply.run(p.parse_args([str(out), "--config", str(cfg_file), "--no-eval", "--allow-unsigned"])) == 0
    assert "UNSIGNED" in capsys.readouterr().out
    versions = {p.name for p in (tmp_path / "edge" / "versions").iterdir()}
    assert lab_version in versions and len(versions) == 2
