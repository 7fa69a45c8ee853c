"""Signed payloads: the host signs every adapter payload with Ed25519, the edge verifies before decoding anything.

Layout of a signed payload (little-endian), wrapping the payload of adapters.payload byte for byte:
    0   4s  magic b"ALRS"
    4   H   container version (1)
    6   H   flags (0; other values are refused)
    8   8s  key id: the first 8 bytes of SHA-256 of the signer's raw 32-byte Ed25519 public key
    16  Q   payload length in bytes (at most MAX_PAYLOAD_BYTES; must be exactly what follows the signature)
    24  64s Ed25519 signature over DOMAIN + bytes 0-23 + SHA-256(payload)
    88  the payload (b"ALRP" header, manifest, body)

The signature covers the whole payload (header, manifest and body) and the container header, so a payload
re-packed by someone without the host's secret key (new weights, recomputed probe logits, a fresh SHA-256)
does not verify. `open_payload` checks the fixed header, the sizes, the key id against the trust store and
the signature, and only then hands the payload to adapters.payload for parsing. Torch-free.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from adapters.payload import HEADER_BYTES, MAGIC as PAYLOAD_MAGIC, MAX_BODY_BYTES, MAX_MANIFEST_BYTES, PayloadError

MAGIC = b"ALRS"
VERSION = 1
HEADER = struct.Struct("<4sHH8sQ")
SIGNATURE_BYTES = 64
SIGNED_HEADER_BYTES = HEADER.size + SIGNATURE_BYTES  # 88
KEY_ID_BYTES = 8
RAW_KEY_BYTES = 32
MAX_PAYLOAD_BYTES = HEADER_BYTES + MAX_MANIFEST_BYTES + MAX_BODY_BYTES
MAX_TRUSTED_KEYS = 1024
DOMAIN = b"airlora signed adapter payload v1\x00"
UNSIGNED_HINT = "edge.allow_unsigned: true accepts unsigned payloads on throwaway loopback runs"


def key_id(public_raw: bytes) -> str:
    """The short id of a raw Ed25519 public key: 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_raw).digest()[:KEY_ID_BYTES].hex()


def public_key(secret_raw: bytes) -> bytes:
    """The raw 32-byte public key of a raw 32-byte Ed25519 secret key."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return _private(secret_raw).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _private(secret_raw: bytes) -> Ed25519PrivateKey:
    if len(secret_raw) != RAW_KEY_BYTES:
        raise PayloadError(f"an Ed25519 secret key has {RAW_KEY_BYTES} bytes, got {len(secret_raw)}")
    return Ed25519PrivateKey.from_private_bytes(secret_raw)


def _message(head: bytes, payload: bytes | memoryview) -> bytes:
    return DOMAIN + head + hashlib.sha256(payload).digest()


def sign(payload: bytes, secret_raw: bytes) -> bytes:
    """The signed container of a payload (adapters.payload.encode's output) under a raw Ed25519 secret key."""
    if payload[:4] != PAYLOAD_MAGIC:
        raise PayloadError("only an adapter payload (magic ALRP) can be signed")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds the limit of {MAX_PAYLOAD_BYTES}")
    secret = _private(secret_raw)
    kid = bytes.fromhex(key_id(public_key(secret_raw)))
    head = HEADER.pack(MAGIC, VERSION, 0, kid, len(payload))
    return head + secret.sign(_message(head, payload)) + payload


def is_signed(buf: bytes) -> bool:
    """Whether buf starts like a signed container (nothing verified)."""
    return bytes(buf[:4]) == MAGIC


def unwrap_unverified(buf: bytes) -> bytes:
    """The payload inside a signed container WITHOUT checking the signature (the host's own records, tests);
    an unsigned payload is returned as it is. Never use it to accept a payload."""
    if not is_signed(buf):
        return buf
    _, head = _header(buf)
    return buf[SIGNED_HEADER_BYTES:SIGNED_HEADER_BYTES + head[4]]


@dataclass(frozen=True)
class TrustStore:
    """The host public keys whose payloads an edge installs: {key id: (name, raw public key)}."""

    keys: dict[str, tuple[str, bytes]]
    source: str = "the trust store"
    """Where the keys came from (a directory), for refusals."""

    @classmethod
    def from_public_keys(cls, named: dict[str, bytes], source: str = "the trust store") -> "TrustStore":
        """A store from {name: raw 32-byte public key} (e.g. testbed.keys.trusted_signing_keys)."""
        if len(named) > MAX_TRUSTED_KEYS:
            raise PayloadError(f"{source} holds {len(named)} keys, more than the limit of {MAX_TRUSTED_KEYS}")
        keys = {}
        for name, raw in named.items():
            if len(raw) != RAW_KEY_BYTES:
                raise PayloadError(f"{source}: key {name!r} is not a {RAW_KEY_BYTES}-byte Ed25519 public key")
            keys[key_id(raw)] = (name, bytes(raw))
        return cls(keys, source)


@dataclass(frozen=True)
class Opened:
    """A payload that may be decoded: its bytes, and who signed it (None when accepted unsigned)."""

    payload: bytes
    signed_by: str | None
    """The signer's key id (16 hex digits); None for an unsigned payload accepted under allow_unsigned."""
    signer: str | None = None
    """The signer's name in the trust store (its key file's stem)."""


def _header(buf: bytes) -> tuple[bytes, tuple]:
    """The container header's bytes and fields, every field checked against the buffer's length."""
    if len(buf) < SIGNED_HEADER_BYTES:
        raise PayloadError(f"signed payload is truncated: {len(buf)} bytes, the signature header alone needs "
                           f"{SIGNED_HEADER_BYTES}")
    head = bytes(buf[:HEADER.size])
    fields = HEADER.unpack(head)
    _, version, flags, _, length = fields
    if version != VERSION:
        raise PayloadError(f"unsupported signed-payload version {version} (this edge reads version {VERSION})")
    if flags:
        raise PayloadError(f"unsupported signed-payload flags {flags:#x}")
    if length > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"signed payload announces {length} bytes, more than the limit of {MAX_PAYLOAD_BYTES}")
    return head, fields


def open_payload(buf: bytes, trust: TrustStore, allow_unsigned: bool = False) -> Opened:
    """Check the signature of a received payload before anything in it is parsed; PayloadError says why not.

    Refused: an unsigned payload (unless allow_unsigned), a key id not in the trust store (unless
    allow_unsigned: then it counts as unsigned), a bad signature, and any malformed container header.
    """
    if not is_signed(buf):
        if bytes(buf[:4]) == PAYLOAD_MAGIC:
            if allow_unsigned:
                return Opened(bytes(buf), None)
            raise PayloadError(f"unsigned payload: this edge installs only payloads signed by a key in "
                               f"{trust.source} ({UNSIGNED_HINT})")
        raise PayloadError("not a signed adapter payload (bad magic bytes)")
    head, (_, _, _, kid_raw, length) = _header(buf)
    if len(buf) != SIGNED_HEADER_BYTES + length:
        got = len(buf) - SIGNED_HEADER_BYTES
        what = "truncated" if got < length else "followed by trailing bytes"
        raise PayloadError(f"signed payload is {what}: it announces {length} payload bytes, got {got}")
    kid = kid_raw.hex()
    payload = memoryview(buf)[SIGNED_HEADER_BYTES:]
    known = trust.keys.get(kid)
    if known is None:
        if allow_unsigned:
            return Opened(bytes(payload), None)
        raise PayloadError(f"payload signed by unknown key {kid}: not in {trust.source} "
                           f"({len(trust.keys)} trusted); copy the host's NAME.sign there to trust it")
    name, raw = known
    signature = bytes(buf[HEADER.size:SIGNED_HEADER_BYTES])
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, _message(head, payload))
    except InvalidSignature:
        raise PayloadError(f"bad signature: the payload does not match what key {kid} ({name}) signed "
                           "(altered in transit or re-packed by someone else)") from None
    return Opened(bytes(payload), kid, name)
