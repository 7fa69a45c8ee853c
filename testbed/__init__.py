"""What every side of the testbed shares: the testbed.yaml schema, control messages, the `airlora` CLI."""

__version__ = "0.1.0"
