"""Progress bars: drawn only when the CLI turned them on and the stream is a terminal; never in --json output."""

from __future__ import annotations

import io
import json

import pytest

from testbed import progress


class FakeTty(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def bars_off():
    progress.enable(False)
    yield
    progress.enable(False)


def _use(bar) -> None:
    with bar:
        for _ in range(3):
            bar.update()
        bar.set_postfix(loss="0.5")


def test_bar_is_a_noop_when_disabled():
    stream = FakeTty()
    bar = progress.progress(3, "work", file=stream)
    assert isinstance(bar, progress.NoBar)
    _use(bar)
    assert bar.n == 3 and stream.getvalue() == ""


def test_bar_is_a_noop_when_the_stream_is_not_a_terminal():
    progress.enable(True)
    stream = io.StringIO()
    bar = progress.progress(3, "work", file=stream)
    assert isinstance(bar, progress.NoBar)
    _use(bar)
    assert stream.getvalue() == ""


def test_bar_draws_when_enabled_on_a_terminal():
    progress.enable(True)
    stream = FakeTty()
    bar = progress.progress(3, "work", unit="step", file=stream)
    assert not isinstance(bar, progress.NoBar)
    _use(bar)
    assert "work" in stream.getvalue() and "3/3" in stream.getvalue()


def test_the_cli_rule_json_or_no_terminal_turns_bars_off():
    assert progress.enable_for_command(False, FakeTty()) is True
    assert progress.enable_for_command(True, FakeTty()) is False
    assert progress.enable_for_command(False, io.StringIO()) is False


def test_echo_prints_plain_lines_when_bars_are_off():
    out = io.StringIO()
    progress.echo("a line", file=out)
    assert out.getvalue() == "a line\n"


def test_link_json_is_one_object_without_bar_text_even_on_a_terminal(capsys, monkeypatch):
    from airlora.cli import main

    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    assert main(["link", "--snr-db", "20", "--bytes", "3000", "--seed", "1", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["delivered"] is True  # one JSON object and nothing else
    assert captured.out.count("\n") == 1 and "delivering" not in captured.out + captured.err
    assert not progress.enabled()  # the CLI turns bars off again when the command ends


def test_link_draws_its_bar_on_a_terminal(capsys, monkeypatch):
    from airlora.cli import main

    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    assert main(["link", "--snr-db", "20", "--bytes", "3000", "--seed", "1"]) == 0
    captured = capsys.readouterr()
    assert "delivering" in captured.err and "/3000 [" in captured.err  # frame v2: the bar counts payload bytes
    assert "burst    0:" in captured.out and "delivering" not in captured.out
