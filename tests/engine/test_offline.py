"""buildroadnetwork's download without internet fails fast, naming the offline alternative
(no real download: the download server is an unreachable local port)."""

from __future__ import annotations

import time

import pytest

from territory_planner_plugin import network
from territory_planner_plugin.errors import NetworkUnavailableError

BBOX = (24.93, 60.16, 24.95, 60.17)


@pytest.fixture
def offline(monkeypatch):
    """OSMnx pointed at a closed local port; its downloader must not even be called."""
    import osmnx as ox

    def never(*args, **kwargs):
        raise AssertionError("the download was attempted")

    monkeypatch.setattr(ox.settings, "overpass_url", "http://127.0.0.1:9/api")
    monkeypatch.setattr(ox, "graph_from_bbox", never)


def test_download_without_internet_fails_within_seconds(offline) -> None:
    start = time.perf_counter()
    with pytest.raises(NetworkUnavailableError) as err:
        network.build_road_network(None, bbox=BBOX)
    assert time.perf_counter() - start < network.PROBE_TIMEOUT_S + 2
    text = str(err.value)
    assert text.startswith("EXTENT: cannot reach the OpenStreetMap download server 127.0.0.1")
    assert "INPUT_OSM" in text
    assert ".osm.pbf" in text


def test_unanswered_name_lookup_is_cut_at_the_timeout(monkeypatch) -> None:
    import socket

    def hang(*args, **kwargs):
        time.sleep(5)
        raise OSError("timed out")  # what a real lookup would end with

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    with pytest.raises(NetworkUnavailableError, match=r"no answer within 0\.5 s.*INPUT_OSM"):
        network._check_reachable("https://overpass.example/api", timeout_s=0.5)
    assert time.perf_counter() - start < 2


def test_overpass_url_is_used_then_restored(monkeypatch) -> None:
    """OVERPASS_URL reaches the probe and the download; OSMnx's global setting is put back."""
    import osmnx as ox

    seen = []
    monkeypatch.setattr(network, "_check_reachable", lambda url: seen.append(("probe", url)))

    def fake(*args, **kwargs):
        seen.append(("download", ox.settings.overpass_url))
        raise ConnectionError("refused")

    monkeypatch.setattr(ox, "graph_from_bbox", fake)
    default = ox.settings.overpass_url
    with pytest.raises(NetworkUnavailableError, match="INPUT_OSM"):
        network.build_road_network(None, bbox=BBOX, overpass_url="https://own.example/api/")
    assert seen == [("probe", "https://own.example/api"), ("download", "https://own.example/api")]
    assert ox.settings.overpass_url == default


def test_overpass_url_must_be_a_web_address() -> None:
    from territory_planner_plugin.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"OVERPASS_URL: 'ftp://x' is not a web address"):
        network.build_road_network(None, bbox=BBOX, overpass_url="ftp://x")
