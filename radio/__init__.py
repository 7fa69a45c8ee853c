"""The air interface: framing, FEC, modulation, pulse shaping, sync, SNR, link adaptation, channels, backends."""
