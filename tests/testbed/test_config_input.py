"""Bad config files, --set values and arguments: exit code 2, one short line naming the key or file, no traceback."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from airlora.cli import main
from testbed import config, yaml_input
from testbed.errors import ConfigError

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefghi", "bcdefghij"))
"""Nine levels of nine aliases: 9**10 (3.5e9) values once expanded, from about 300 bytes."""

FILES: dict[str, bytes] = {
    "empty": b"",
    "comments": b"# nothing here\n",
    "list": b"- radio\n- channel\n",
    "scalar": b"42\n",
    "latin1": "radio:\n  backend: zmq  # caf\xe9\n".encode("latin-1"),
    "huge": b"radio:\n  mcs: '" + b"x" * (2 << 20) + b"'\n",
    "bomb": ALIAS_BOMB.encode(),
    "bomb_in_a_key": ("run:\n  snr_db_rounds: &r [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + ALIAS_BOMB.replace("x", "1")
                      ).encode(),
    "self_alias": b"run:\n  snr_db_rounds: &r [1, *r]\n",
    "deep": b"run:\n  snr_db_rounds: " + b"[" * 20000 + b"]" * 20000 + b"\n",
    "bad_yaml": b"radio: [zmq\nchannel: {}\n",
    "nul": b"radio: \x00\n",
}


def cli(argv: list[str], capsys) -> tuple[int, str]:
    """Run the airlora command in process: exit code and stderr (argparse errors exit through SystemExit)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, expected: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert err.strip().count("\n") == 0, err
    assert len(err) < 400, err[:400]
    assert expected in err, err


@pytest.mark.parametrize("name, extra, expected", [
    ("empty", [], "empty.yaml: holds no settings"),
    ("comments", [], "comments.yaml: holds no settings"),
    ("list", ["--set", "radio.backend=zmq"], "list.yaml: the top level must be a mapping of sections, got list"),
    ("scalar", ["--set", "x=1"], "scalar.yaml: the top level must be a mapping of sections, got int"),
    ("latin1", [], "latin1.yaml: not UTF-8 text (byte 0xe9"),
    ("huge", [], "huge.yaml: larger than 1048576 bytes"),
    ("bomb", [], "bomb.yaml: more than 100000 values once aliases are expanded"),
    ("bomb_in_a_key", [], "bomb_in_a_key.yaml: more than 100000 values once aliases are expanded"),
    ("self_alias", [], "self_alias.yaml: more than 100000 values once aliases are expanded"),
    ("deep", [], "deep.yaml: nested too deeply"),
    ("bad_yaml", [], "bad_yaml.yaml: not valid YAML: expected ',' or ']', but got ':' at line 2, column 8"),
    ("nul", [], "nul.yaml: not valid YAML: unacceptable character #x0000"),
])
def test_bad_config_files_are_refused_in_one_line(tmp_path: Path, capsys, name, extra, expected) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(FILES[name])
    t0 = time.monotonic()
    code, err = cli(["link", "--config", str(path), *extra], capsys)
    assert time.monotonic() - t0 < 5.0  # an alias bomb is refused before anything walks it
    assert_one_line_error(code, err, expected)


@pytest.mark.parametrize("path, expected", [
    ("/dev/zero", "/dev/zero: larger than 1048576 bytes"),
    ("/", "/: cannot read the config file"),
])
def test_special_files_are_refused(capsys, path: str, expected: str) -> None:
    assert_one_line_error(*cli(["link", "--config", path], capsys), expected)


@pytest.mark.parametrize("overrides, expected", [
    (["channel.cfo_hz=nan"], "channel.cfo_hz: Input should be a finite number"),
    (["channel.cfo_hz=.inf"], "channel.cfo_hz: Input should be a finite number"),
    (["channel.cfo_hz=1e9"], "channel.cfo_hz: '1e9' is out of range"),
    (["channel.snr_db=1e400"], "channel.snr_db: Input should be a finite number"),
    (["channel.timing_offset_samples=.inf"], "channel.timing_offset_samples: Input should be a finite number"),
    (["channel.timing_offset_samples=1e12"], "channel.timing_offset_samples: '1e12' is out of range; it must be <="),
    (["channel.phase_noise_linewidth_hz=.nan"], "channel.phase_noise_linewidth_hz: Input should be a finite number"),
    (["run.snr_db_rounds=[5, .nan]"], "run.snr_db_rounds.1: Input should be a finite number"),
    (["run.snr_db_rounds=[500]"], "run.snr_db_rounds.0: 500 is out of range"),
    (["policy.cost_weight=.inf"], "policy.cost_weight: Input should be a finite number"),
    (["policy.snr_db_range=[-5, .inf]"], "policy.snr_db_range.1: Input should be a finite number"),
    (["policy.snr_db_range=[20, -5]"], "policy.snr_db_range: must be [low, high]"),
    (["policy.ddim_train_steps=1000000000000"], "policy.ddim_train_steps: 1000000000000 is out of range"),
    (["control.heartbeat_s=nan"], "control.heartbeat_s: Input should be a finite number"),
    (["run.delivery_timeout_s=1e7"], "run.delivery_timeout_s: '1e7' is out of range; it must be <= 86400"),
    (["run.apply_timeout_s=.inf"], "run.apply_timeout_s: Input should be a finite number"),
    (["run.edge_start_timeout_s=1e9"], "run.edge_start_timeout_s: '1e9' is out of range"),
    (["run.rank_candidates=[4, 0]"], "run.rank_candidates.1: 0 is out of range; it must be >= 1"),
    (["run.rank_candidates=[]"], "run.rank_candidates: List should have at least 1 item"),
    (["control.endpoint=tcp://127.0.0.1:99999"], "control.endpoint: port '99999' is not in 1..65535"),
    (["control.endpoint=tcp://127.0.0.1:0"], "control.endpoint: port '0' is not in 1..65535"),
    (["control.endpoint=tcp://127.0.0.1"], "control.endpoint: a tcp endpoint needs HOST:PORT"),
    (["control.bind=tcp://:5555"], "control.bind: a tcp endpoint needs HOST:PORT"),
    (["control.endpoint=tcp://[::1:5555"], "control.endpoint: an IPv6 host goes in brackets"),
    (["control.endpoint=http://example.org"], "control.endpoint: is not a ZeroMQ address"),
    (["radio.zmq.endpoint=tcp://127.0.0.1:70000"], "radio.zmq.endpoint: port '70000' is not in 1..65535"),
    (["radio.zmq.bind_endpoint=ipc:///tmp/" + "x" * 200], "radio.zmq.bind_endpoint: an ipc path may have 107"),
    (["radio.pluto.rf_bandwidth_hz=56e6"], "radio.pluto.rf_bandwidth_hz: '56e6' is out of range; it must be <= 4"),
    (["radio.pluto.tx_attenuation_db=10.1"], "radio.pluto.tx_attenuation_db: must be a multiple of 0.25 dB"),
    (["radio.pluto.lo_hz=2.4e9", "radio.pluto.rx_gain_db=72"],
     "radio.pluto: rx_gain_db 72 is outside -3..71 dB"),
    (["radio.pluto.lo_hz=4e9"], "radio.pluto.lo_hz: '4e9' is out of range"),
    (["radio.pluto.uri=tcp:1.2.3.4"], "radio.pluto.uri: is not a libiio URI"),
    (["channel.snr_db=" + "9" * 3_000_000], "channel.snr_db:"),
    (["radio.backend=" + "z" * 3_000_000], "radio.backend:"),
    (["k" * 3_000_000 + "=1"], "unknown key 'kkkk"),
    (["radio.backend.x=1"], "--set radio.backend.x: 'backend' is not a section"),
])
def test_bad_values_are_refused_in_one_line_naming_the_key(capsys, overrides: list[str], expected: str) -> None:
    argv = ["link"] + [a for o in overrides for a in ("--set", o)]
    assert_one_line_error(*cli(argv, capsys), expected)


def test_an_alias_bomb_in_a_set_value_is_refused(capsys) -> None:
    bomb = "[" + ", ".join(["&a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"] + ["*a"] * 9) + "]"
    for level in "bcdefg":
        bomb = f"[&{level} {bomb}, " + ", ".join([f"*{level}"] * 9) + "]"
    assert_one_line_error(*cli(["link", "--set", f"run.snr_db_rounds={bomb}"], capsys),
                          "--set run.snr_db_rounds: more than 100000 values once aliases are expanded")


@pytest.mark.parametrize("argv, expected", [
    (["edge", "--log-level", "bogus"], "airlora edge: argument --log-level: invalid choice: 'BOGUS'"),
    (["edge", "--max-s", "-5"], "airlora edge: argument --max-s: expected a number > 0, got '-5'"),
    (["edge", "--max-s", "inf"], "airlora edge: argument --max-s: expected a finite number"),
    (["link", "--snr-db", "nan"], "airlora link: argument --snr-db: expected a finite number"),
    (["link", "--cfo-hz=-inf"], "airlora link: argument --cfo-hz: expected a finite number"),
    (["mcs-table", "--cfo-hz", "nan"], "airlora mcs-table: argument --cfo-hz: expected a finite number"),
    (["ber", "--sample-rate-hz", "0"], "airlora ber: argument --sample-rate-hz: expected a number > 0"),
    (["link", "--bytes", "x" * 100_000], "airlora link: argument --bytes: invalid int value"),
])
def test_bad_arguments_are_one_line_usage_errors(capsys, argv: list[str], expected: str) -> None:
    assert_one_line_error(*cli(argv, capsys), expected)


def test_keys_out_on_a_file_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("not a directory")
    assert_one_line_error(*cli(["keys", "--out", str(tmp_path / "file")], capsys), "--out ")
    assert_one_line_error(*cli(["keys", "--out", str(tmp_path / "file" / "sub")], capsys),
                          "cannot create the directory")


@pytest.mark.parametrize("verb", [["edge"], ["apply", "payload.bin"]])
def test_an_adapter_dir_that_is_a_file_is_refused_before_anything_starts(tmp_path: Path, capsys, verb) -> None:
    (tmp_path / "file").write_text("not a directory")
    for adapter_dir, expected in ((tmp_path / "file", "is a file, not a directory"),
                                  (tmp_path / "file" / "sub", f"{tmp_path / 'file'} is a file, not a directory")):
        argv = [*verb, "--set", f"edge.adapter_dir={adapter_dir}", "--set", "control.endpoint=tcp://127.0.0.1:1"]
        assert_one_line_error(*cli(argv, capsys), f"edge.adapter_dir {adapter_dir}: {expected}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing written


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_adapter_dir_is_refused(tmp_path: Path, capsys) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    argv = ["edge", "--set", f"edge.adapter_dir={locked / 'edge'}"]
    assert_one_line_error(*cli(argv, capsys), f"edge.adapter_dir {locked / 'edge'}: {locked} is not writable")


def test_a_set_value_that_is_not_yaml_stays_a_string() -> None:
    # frame v1: it leaves an MCS name it does not know to the link (v2 refuses any but 'auto' and ldpc-*)
    assert config.load(None, ["radio.frame=v1", "radio.mcs=[qpsk"]).radio.mcs == "[qpsk"


def test_anchors_and_aliases_of_a_normal_size_still_work() -> None:
    assert yaml_input.parse("a: &a [1, 2]\nb: [*a, *a]\n", "t") == {"a": [1, 2], "b": [[1, 2], [1, 2]]}


def test_many_problems_are_listed_up_to_a_limit() -> None:
    with pytest.raises(ConfigError) as err:
        config.load(None, ["run.snr_db_rounds=[" + ", ".join([".nan"] * 50) + "]"])
    lines = str(err.value).splitlines()
    assert len(lines) == config.MAX_ERROR_LINES + 1 and lines[-1].endswith("and 40 more problems")
