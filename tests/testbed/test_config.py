"""testbed.yaml is strict: unknown keys, wrong types and out-of-range values are refused with the key's name."""

from __future__ import annotations

import pytest

from testbed import config
from airlora.cli import main
from testbed.errors import ConfigError


def test_default_config_loads_with_the_documented_defaults() -> None:
    cfg = config.load()
    assert cfg.radio.backend == "zmq" and cfg.run.rounds == 3 and cfg.model.name == "minilm-l6"


def test_the_default_link_is_v2_between_two_crystals() -> None:
    from radio.config import PlutoConfig, RadioConfig

    cfg, schema = config.load(), RadioConfig()
    for radio in (cfg.radio, schema):  # testbed.yaml and the schema's own defaults agree
        assert (radio.frame, radio.rolloff, radio.pluto.emulated_ppm) == ("v2", 0.15, None)
    assert PlutoConfig().emulated_ppm is None
    # the zmq cable's channel carries one crystal pair's offset: CFO and SCO from the same 20 ppm at the LO
    assert cfg.channel.sco_ppm == 20.0
    assert cfg.channel.cfo_hz == pytest.approx(cfg.channel.sco_ppm * 1e-6 * cfg.radio.pluto.lo_hz)


@pytest.mark.parametrize("override, expected", [
    ("radio.bakend=sim", "unknown key 'radio.bakend'"),
    ("radio.backend=foo", "radio.backend: 'foo' is not allowed; allowed values: 'sim', 'zmq', 'pluto' or 'replay'"),
    ("radio.samples_per_symbol=1", "radio.samples_per_symbol: 1 is out of range; it must be >= 2"),
    ("channel.snr_db=abc", "channel.snr_db:"),
    ("run.rounds=0", "run.rounds: 0 is out of range; it must be >= 1"),
])
def test_bad_values_are_refused_naming_the_key(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(None, [override])
    assert expected in str(err.value)
    assert str(err.value).count("\n") == 0  # one line per problem


def test_cli_reports_config_errors_in_one_line_and_exits_2(capsys) -> None:
    assert main(["link", "--set", "radio.rolloff=3", "--bytes", "100"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("airlora link: testbed.yaml: radio.rolloff: 3 is out of range")


def test_missing_config_file_is_named(tmp_path) -> None:
    with pytest.raises(ConfigError, match="nope.yaml: cannot read the config file"):
        config.load(tmp_path / "nope.yaml")
