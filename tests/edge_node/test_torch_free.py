"""The edge's radio path (payload parsing, SHA-256, identity, rebuild, install) must not import torch."""

import subprocess
import sys

import numpy as np

from adapters import payload as pl
from adapters import signing

CHECK = """
import sys
{body}
heavy = sorted(m for m in ("torch", "transformers", "peft", "bitsandbytes") if m in sys.modules)
assert not heavy, heavy
print("ok")
"""


def _run(body: str) -> None:
    out = subprocess.run([sys.executable, "-c", CHECK.format(body=body)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr


def test_radio_path_modules_do_not_import_torch():
    _run("import edge_node.payload_reader, adapters.signing, testbed.keys, adapters.rebuild, edge_node.install, edge_node.verify, "
         "edge_node.pipeline, adapters.payload, adapters.quantize, adapters.identity, ml.features, ml.data, adapters.ranks")


def test_checking_and_rebuilding_a_payload_needs_no_torch(tmp_path):
    t = {"base_model.model.x.layer.0.q.lora_A.weight": np.ones((2, 8), np.float32),
         "base_model.model.x.layer.0.q.lora_B.weight": np.ones((8, 2), np.float32)}
    manifest = {"model": {"name": "m", "sha256": "ab", "num_labels": 2}, "probe": {"texts": ["a"], "logits": [[0.0, 1.0]]},
                "peft": {"task_type": "SEQ_CLS", "modules": {"x.layer.0.q": {"r": 2, "alpha": 4}},
                         "modules_to_save": [], "dropout": 0.0}, "quant": {"scheme": "nf4", "block_size": 64}}
    signed = signing.sign(pl.encode(manifest, t, {k: "nf4" for k in t}, 64), bytes(range(32)))
    (tmp_path / "p.bin").write_bytes(signed)
    _run(f"""
from pathlib import Path
from edge_node.payload_reader import check_payload
from adapters.rebuild import rebuild
from adapters.signing import TrustStore, public_key
from edge_node.install import install, staging_dir, current_adapter
trust = TrustStore.from_public_keys({{"host": public_key(bytes(range(32)))}})
p = check_payload(Path({str(tmp_path / 'p.bin')!r}).read_bytes(), {{"name": "m", "sha256": "ab"}}, trust=trust)
assert p.signed_by is not None
staged = rebuild(p, staging_dir({str(tmp_path / 'edge')!r}))
assert (staged / "adapter_model.safetensors").exists()
install(staged, {str(tmp_path / 'edge')!r}, p.sha256[:16])
assert current_adapter({str(tmp_path / 'edge')!r}) is not None
""")
