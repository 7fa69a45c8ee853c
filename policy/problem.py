"""The rank decision problem: state vector, action to ranks, cost and reward of a rank vector.

State (numpy float32, 4 + n): [normalized measured SNR, normalized bandwidth, lexical entropy, OOV rate,
ranks / r_max]. Action: one rank per adapted projection, 0..r_max (0 leaves it out). Reward:
-loss - cost_weight * airtime - deadline_penalty * (airtime > deadline); the airtime is the real link's at the MCS
it picks for the measured SNR, or the ideal Shannon airtime (policy.cost in testbed.yaml).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from policy.cost import OVERHEAD_BYTES, lora_payload_bytes
from policy.state import PolicyState
from radio.airtime import burst_samples, delivery_mcs, packet_success_rate, shannon_airtime_s
from radio.delivery_model import delivery_airtime_s_v2
from radio.link import LinkSettings
from radio.pulse import rrc_taps

if TYPE_CHECKING:
    from testbed.config import TestbedConfig

BANDWIDTH_REF_HZ = 1.0e6  # the bandwidth feature is bandwidth_hz / 1 MHz


@dataclass
class Outcome:
    """What one rank vector did at one SNR: quality, payload, airtime, reward."""

    ranks: list[int]
    snr_db: float
    loss: float
    accuracy: float
    payload_bytes: int
    airtime_s: float
    cost: float
    reward: float
    missed_deadline: bool

    def row(self) -> dict[str, Any]:
        """The outcome as a table row (without the rank vector)."""
        return {k: v for k, v in asdict(self).items() if k != "ranks"}


@dataclass(frozen=True)
class Problem:
    """The fixed parts of the decision problem: projections, link, cost mode, reward weights.

    `link` is None where no airtime is computed (a policy loaded from a checkpoint only maps states to ranks).
    """

    modules: list[str]
    shapes: dict[str, tuple[int, int]]
    link: LinkSettings | None
    quant: str = "nf4"
    block_size: int = 64
    overhead_bytes: int = OVERHEAD_BYTES
    r_max: int = 16
    cost_mode: str = "real"
    cost_weight: float = 0.1
    deadline_s: float = 20.0
    deadline_penalty: float = 10.0
    snr_db_range: tuple[float, float] = (-5.0, 20.0)
    double_quant: bool = True

    @property
    def n(self) -> int:
        """Number of adaptable projections."""
        return len(self.modules)

    @property
    def obs_dim(self) -> int:
        """Length of the state vector."""
        return 4 + self.n

    @cached_property
    def _bytes_table(self) -> np.ndarray:
        """[n, r_max + 1]: payload bytes of each module at each rank (exact, from lora_payload_bytes)."""
        return np.array([[lora_payload_bytes({m: r}, self.shapes, self.quant, self.block_size, 0, self.double_quant)
                          for r in range(self.r_max + 1)] for m in self.modules], np.int64)

    def payload_bytes(self, ranks: list[int]) -> int:
        """Exact payload bytes of a rank vector (0 when nothing is adapted: no adapter is sent)."""
        if not any(ranks):
            return 0
        r = np.clip(np.asarray(ranks, np.int64), 0, self.r_max)
        return int(self._bytes_table[np.arange(self.n), r].sum()) + self.overhead_bytes

    @cached_property
    def _packet_samples(self) -> dict[tuple[int, int], int]:
        return {}

    @cached_property
    def _v2_airtime(self) -> dict[tuple[int, float], float]:
        return {}

    def airtime_s(self, payload_bytes: int, snr_db: float) -> float:
        """Airtime of a payload in the configured cost mode: radio.airtime.delivery_airtime_s (real) or
        shannon_airtime_s.

        The real one is computed packet-wise as radio.airtime.burst_samples does (full packets are all alike),
        so it equals delivery_airtime_s exactly without walking every packet.
        """
        if payload_bytes == 0:
            return 0.0
        link = self.link
        if self.cost_mode == "shannon":
            return shannon_airtime_s(link, payload_bytes, snr_db)
        if getattr(link, "frame", "v1") == "v2":  # LDPC bursts: probe, pass, tail picks and repeats from the curves
            key = (payload_bytes, round(float(snr_db), 3))
            if key not in self._v2_airtime:  # computed at the key's SNR: the same for every call that shares it
                self._v2_airtime[key] = delivery_airtime_s_v2(link, payload_bytes, key[1])
            return self._v2_airtime[key]
        mcs = delivery_mcs(link, snr_db)
        cache = self._packet_samples

        def one(size: int) -> int:  # samples of a one-packet burst minus the filter tail
            key = (size, mcs.index)
            if key not in cache:
                tail = rrc_taps(link.samples_per_symbol, link.rolloff).size - 1
                cache[key] = burst_samples(size, link.packet_payload_bytes, mcs, link.samples_per_symbol,
                                           link.rolloff) - tail
            return cache[key]

        full, rest = divmod(payload_bytes, link.packet_payload_bytes)
        samples = full * one(link.packet_payload_bytes) + (one(rest) if rest else 0)
        samples += rrc_taps(link.samples_per_symbol, link.rolloff).size - 1
        return samples / link.sample_rate_hz / packet_success_rate(link)

    def observe(self, snr_db: float, bandwidth_hz: float, entropy: float, oov_rate: float,
                ranks: list[int]) -> np.ndarray:
        """The state vector: normalized SNR and bandwidth, the data's features, ranks / r_max."""
        lo, hi = self.snr_db_range
        head = [(snr_db - lo) / (hi - lo), bandwidth_hz / BANDWIDTH_REF_HZ, entropy, oov_rate]
        return np.asarray(head + [r / self.r_max for r in ranks], np.float32)

    def observe_state(self, state: PolicyState) -> np.ndarray:
        """The state vector of a PolicyState (the edge's measured SNR, the data's features, current ranks)."""
        return self.observe(state.snr_db, state.bandwidth_hz, state.entropy, state.oov_rate, state.rank_vector())

    def to_ranks(self, action: np.ndarray) -> list[int]:
        """An action in [-1, 1]^n to ranks 0..r_max (rounded; -1 leaves the projection out).

        An adapter needs one adapted projection at least: all-zero becomes rank 1 on the highest action.
        """
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        ranks = [int(r) for r in np.rint((a + 1.0) / 2.0 * self.r_max)]
        if not any(ranks):
            ranks[int(np.argmax(a))] = 1
        return ranks

    def to_action(self, ranks: list[int]) -> np.ndarray:
        """Ranks 0..r_max to an action in [-1, 1]^n (the inverse of to_ranks)."""
        return np.asarray(ranks, np.float32) / self.r_max * 2.0 - 1.0

    def score(self, ranks: list[int], snr_db: float, loss: float, accuracy: float) -> Outcome:
        """Payload, airtime, cost and reward of a rank vector whose quality is known."""
        size = self.payload_bytes(ranks)
        airtime = self.airtime_s(size, snr_db)
        missed = airtime > self.deadline_s
        reward = -loss - self.cost_weight * airtime - (self.deadline_penalty if missed else 0.0)
        return Outcome(list(ranks), float(snr_db), float(loss), float(accuracy), size, float(airtime),
                       float(airtime), float(reward), bool(missed))


def problem_from_config(cfg: TestbedConfig, modules: list[str], shapes: dict[str, tuple[int, int]]) -> Problem:
    """The decision problem of a testbed config (link numbers from radio:, reward numbers from policy:)."""
    p = cfg.policy
    return Problem(list(modules), {m: tuple(s) for m, s in shapes.items()}, LinkSettings.from_config(cfg.radio),
                   cfg.finetune.quant, cfg.finetune.block_size, OVERHEAD_BYTES, p.r_max, p.cost, p.cost_weight,
                   p.deadline_s, p.deadline_penalty, tuple(p.snr_db_range), cfg.finetune.double_quant)
