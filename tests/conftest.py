"""Shared pytest options (--pluto-uri enables the hardware-marked tests) and tiny random-init model fixtures."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HARDWARE_SKIP_REASON = "needs --pluto-uri ip:... and a Pluto"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--pluto-uri",
        action="store",
        default=None,
        help="libiio URI of an ADALM-PLUTO for hardware tests, e.g. ip:192.168.2.1",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--pluto-uri"):
        return
    skip = pytest.mark.skip(reason=HARDWARE_SKIP_REASON)
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def pluto_uri(request: pytest.FixtureRequest) -> str:
    """The --pluto-uri value; skips the test when it was not given."""
    uri = request.config.getoption("--pluto-uri")
    if not uri:
        pytest.skip(HARDWARE_SKIP_REASON)
    return uri


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory):
    """A tiny random-init BERT classifier folder (trains in seconds)."""
    from ml.tiny import make_tiny_model
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-bert", "bert")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory):
    """A tiny random-init Llama classifier folder."""
    from ml.tiny import make_tiny_model
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama", "llama")
