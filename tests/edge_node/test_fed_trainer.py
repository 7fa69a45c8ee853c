"""An edge's local round on real MiniLM: its own shard, from the installed global adapter, packed and signed with
the edge's own key (which the host trusts), never from an adapter the host did not mean."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adapters.payload import decode
from adapters.rebuild import rebuild
from adapters.signing import TrustStore, open_payload
from edge_node.fed_trainer import installed_global, my_shard, train_local
from ml.data import load_task
from testbed.config import validate
from testbed.errors import AirLoraError
from testbed.keys import edge_signing_secret, host_trusted_edges_dir, trusted_signing_keys


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys")
    return validate({"data": {"train_size": 400, "val_size": 0, "test_size": 40, "probe_count": 2},
                     "model": {"max_length": 32}, "finetune": {"batch_size": 8},
                     "control": {"curve": {"keys_dir": str(keys)}},
                     "fed": {"edges": 2, "shard_index": 1, "shards": "dirichlet", "dirichlet_alpha": 0.3,
                             "eval_examples": 40}})


def test_the_shard_is_this_edges_share(cfg) -> None:
    splits = load_task(cfg.data)
    mine = my_shard(cfg, splits)
    other = my_shard(cfg.model_copy(update={"fed": cfg.fed.model_copy(update={"shard_index": 0})}), splits)
    assert len(mine) + len(other) == 400 and not set(t for t, _ in mine) & set(t for t, _ in other)
    share = np.mean([y for _, y in mine])
    assert abs(share - np.mean([y for _, y in other])) > 0.1  # label-skewed


def test_local_round_from_scratch_then_from_the_global(cfg, tmp_path) -> None:
    secret, path = edge_signing_secret(cfg, "edge-7")
    trusted = trusted_signing_keys(host_trusted_edges_dir(cfg))
    assert "edge-7" in trusted  # generated on first use and trusted by this machine's host
    store = TrustStore.from_public_keys(trusted)
    ranks = {"bert.encoder.layer.0.attention.self.query": 2, "bert.encoder.layer.1.output.dense": 4}
    first = train_local(cfg, ranks, 3, 1, None, None, secret)
    opened = open_payload(first.payload, store)
    assert opened.signer == "edge-7"
    payload = decode(opened.payload)
    assert {m: s["r"] for m, s in payload.manifest["peft"]["modules"].items()} == ranks
    assert first.samples == len(my_shard(cfg, load_task(cfg.data))) and 0.0 <= first.local_accuracy <= 1.0
    with pytest.raises(Exception, match="bad signature"):
        tampered = bytearray(first.payload)
        tampered[-3] ^= 0xFF
        open_payload(bytes(tampered), store)

    folder = rebuild(payload, tmp_path / "current")  # as the edge installs a verified global adapter
    glob = installed_global(folder, payload.sha256)
    assert glob.ranks == ranks
    with pytest.raises(AirLoraError, match="is not the global adapter"):
        installed_global(folder, "0" * 64)
    with pytest.raises(AirLoraError, match="no adapter installed"):
        installed_global(None, payload.sha256)
    new_ranks = {"bert.encoder.layer.0.attention.self.query": 1, "bert.encoder.layer.1.output.dense": 8,
                 "bert.encoder.layer.2.attention.self.value": 2}
    second = train_local(cfg, new_ranks, 2, 2, folder, payload.sha256, secret)
    again = decode(open_payload(second.payload, store).payload)
    assert {m: s["r"] for m, s in again.manifest["peft"]["modules"].items()} == new_ranks
    # it started from the global: its head moved on from the global head, not from the base head
    head = "base_model.model.classifier.weight"
    moved_from_global = np.abs(again.tensors[head] - payload.tensors[head]).max()
    assert moved_from_global < np.abs(payload.tensors[head]).max()
    assert json.loads((folder / "airlora_manifest.json").read_text())["payload_sha256"] == payload.sha256


@pytest.mark.parametrize("ranks, match", [
    ({"bert.encoder.layer.0.attention.self.query": 2, "../../etc/passwd": 4}, "ranks name modules the model does not"),
    ({"bert.encoder.layer.0.attention.self.query": 0}, "every rank is 0"),
])
def test_a_train_start_with_impossible_ranks_is_refused(cfg, ranks, match) -> None:
    secret, _ = edge_signing_secret(cfg, "edge-7")
    with pytest.raises(AirLoraError, match=match):  # FedWorker reports it as train_done ok=False with this reason
        train_local(cfg, ranks, 2, 1, None, None, secret)
