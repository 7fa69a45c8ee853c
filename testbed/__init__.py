"""The shared floor: errors, the testbed.yaml schema, control-plane messages and endpoints, keys, results, plots."""

__version__ = "0.1.0"
