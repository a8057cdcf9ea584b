"""Loading plugins: only enabled ones, clear failures, and observers hear committed changes."""

from __future__ import annotations

import pytest

from gateway.core.plugins import PluginError, build_plugin_manager, collect
from gateway.core.runtime import Gateway
from tests.conftest import make_settings
from tests.plugins import misspelled, observer


def test_only_enabled_plugins_load():
    pm = build_plugin_manager(["care4", "wmo"])
    registry = collect(pm)
    assert sorted(registry.connectors) == ["care4", "webhook", "wmo"]
    assert pm.get_plugin("veiligthuis") is None and pm.get_plugin("police") is None


def test_a_plugin_whose_routes_need_another_names_it_when_that_one_is_not_enabled():
    with pytest.raises(PluginError, match="route 'wmo.toewijzing' targets connector type 'care4'"):
        collect(build_plugin_manager(["wmo"]))


def test_an_enabled_plugin_that_is_not_installed_stops_startup_with_its_name():
    with pytest.raises(PluginError, match=r"plugin 'veilig_thuis' is enabled in GATEWAY_ENABLED_PLUGINS but not installed"):
        build_plugin_manager(["veilig_thuis"])


def test_a_misspelled_hook_stops_startup_naming_the_plugin_and_hook():
    with pytest.raises(PluginError, match=r"implements an unknown hook.*register_conectors"):
        build_plugin_manager([], extra=[misspelled])


def test_a_route_to_a_connector_type_nobody_provides_is_refused(tmp_path):
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - {id: x.y, message_type: notice, target: nowhere, purpose: p, mapping: webhook_notice}\n")
    with pytest.raises(PluginError, match="targets connector type 'nowhere'"):
        Gateway(make_settings(f"sqlite:///{tmp_path}/g.db", tmp_path, routes_file=routes))


def test_a_broken_routes_file_names_itself_and_the_entry(tmp_path):
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - {id: x.y, message_type: notice, purpose: p}\n")
    with pytest.raises(PluginError, match=r"routes file .*routes.yaml: routes.0.target: Field required"):
        Gateway(make_settings(f"sqlite:///{tmp_path}/g.db", tmp_path, routes_file=routes))


def test_observers_hear_every_committed_state_change(live_gateway, sink):
    live_gateway.gw.pm.register(observer)
    observer.SEEN.clear()
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    from tests.helpers import eventually, exchange_state, notice, submit

    with live_gateway.client("hulpverlener") as client:
        exchange_id = submit(client, notice("r-obs")).json()["exchange_id"]
        eventually(lambda: exchange_state(client, exchange_id) == "delivered")
    states = [e.to_state for e in observer.SEEN if e.exchange_id == exchange_id]
    assert states == ["received", "validated", "authorised", "queued", "sending", "delivered"]
    assert all(not hasattr(e, "body") for e in observer.SEEN)
