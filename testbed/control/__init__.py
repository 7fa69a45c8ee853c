"""The ZeroMQ control plane between host and edge.

endpoint.py holds what both sides share (errors, PeerLost, the I/O-thread base), server.py the edge's
ROUTER (ControlServer), client.py the host's DEALER (ControlClient). Import from those modules.
"""
