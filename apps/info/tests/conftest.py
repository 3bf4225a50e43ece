"""Fixtures for info's tests: a fake data service on a real socket, and info's app on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import webtest
from info_testkit import DroppingPeer, FakeData, info_env

from fleetops_info.app import build_app
from fleetops_info.config import Config
from fleetops_info.dataclient import DataClient


@pytest.fixture
def fake_data() -> Iterator[FakeData]:
    data = FakeData()
    data.start()
    try:
        yield data
    finally:
        data.stop()


@pytest.fixture
def dropping_peer() -> Iterator[DroppingPeer]:
    peer = DroppingPeer(answers=1)
    try:
        yield peer
    finally:
        peer.close()


@pytest.fixture
def config(fake_data: FakeData) -> Config:
    return Config.from_env(info_env(fake_data.url))


@pytest.fixture
def data_client(config: Config) -> Iterator[DataClient]:
    client = DataClient.from_config(config)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def app(config: Config, data_client: DataClient) -> webtest.TestApp:
    return webtest.TestApp(build_app(config, data_client))
