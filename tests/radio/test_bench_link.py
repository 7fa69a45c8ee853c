"""radio/bench_link.py's Rician seed range (issue 12: tune on seeds 1-16, check on held-out 17-32)."""

from __future__ import annotations

import pytest

from radio.bench_link import bench_link, main


def test_rician_seeds_start_at_the_first_seed_and_get_a_mean() -> None:
    lines: list[str] = []
    out = bench_link(snrs_db=(), rician_db=(20.0,), payload_bytes=3000, say=lines.append, rician_seeds=2,
                     rician_first_seed=17)
    assert [r["seed"] for r in out["rician"]] == [17, 18] and all(r["delivered"] for r in out["rician"])
    (mean,) = out["rician_mean"]
    assert mean["first_seed"] == 17 and mean["seeds"] == 2
    assert mean["efficiency"] == pytest.approx(sum(r["efficiency"] for r in out["rician"]) / 2)
    assert "seeds 17..18" in lines[0] and "mean of seeds 17..18" in lines[-1]


def test_bad_seed_range_is_refused_naming_the_option() -> None:
    with pytest.raises(ValueError, match="rician_first_seed"):
        bench_link(snrs_db=(), rician_db=(20.0,), rician_first_seed=-1)
    with pytest.raises(SystemExit):
        main(["--snrs=", "--rician=20", "--rician-seeds", "0"])
