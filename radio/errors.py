"""Error types of the radio layer, and the project's base error (defined on the bottom floor so radio imports nothing of ours)."""


class AirLoraError(Exception):
    """Base class for errors the testbed reports to the user with a clear one-line message."""


class RadioError(AirLoraError):
    """Base class for errors raised by the air interface."""


class FecError(RadioError, ValueError):
    """Bad input to the forward error correction (wrong length, unknown rate, non-binary bits)."""


class BackendError(RadioError):
    """A radio backend refused an operation (samples beyond full scale, bad setting, closed or missing device)."""


class FrameError(RadioError):
    """A frame or header could not be parsed (it becomes an erasure)."""


class LinkError(RadioError):
    """The link could not deliver (e.g. the retransmission bound was reached)."""
