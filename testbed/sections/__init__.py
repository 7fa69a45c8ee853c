"""Typed sections of testbed.yaml, one module per side (no heavy imports here)."""
