"""The edge node: verify, rebuild, install and evaluate adapters (the radio path needs no torch)."""
