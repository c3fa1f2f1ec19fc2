"""The plugin system: specs documented, built-ins blockable, entry points discovered."""

from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from appliance import hookimpl
from appliance.app import create_app
from appliance.core import hookspecs
from appliance.core.enrich import EnrichContext
from appliance.core.event import Event
from appliance.core.runtime import Appliance
from appliance.core.settings import SettingsError
from tests.conftest import BROWSER_UA, Browser, event, make_client, wait_for

SPECS = [
    function
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(function, "appliance_spec")
]


def test_every_hook_spec_has_a_docstring_saying_when_and_what() -> None:
    assert len(SPECS) >= 11
    for spec in SPECS:
        doc = inspect.getdoc(spec) or ""
        assert "Called" in doc, f"{spec.__name__}: say when it is called"
        assert "Return" in doc, f"{spec.__name__}: say what it returns"


def test_every_hook_spec_is_exercised_by_a_test() -> None:
    sources = "".join(path.read_text() for path in Path(__file__).parent.glob("test_*.py"))
    implemented = "".join(
        path.read_text() for path in (Path(__file__).parents[1] / "plugins").rglob("*.py")
    )
    for spec in SPECS:
        assert f"def {spec.__name__}(" in implemented + sources, spec.__name__


def create(tmp_path: Path, *plugins: Any, **overrides: Any) -> Appliance:
    return Appliance.create(extra_plugins=plugins, data_dir=str(tmp_path / "data"), **overrides)


def test_blocking_a_builtin_by_name(tmp_path: Path) -> None:
    appliance = create(tmp_path, plugins={"blocked": ["panels_core"]})
    assert "panels_core" not in [plugin.name for plugin in appliance.plugins]
    assert appliance.panels == []
    with pytest.raises(SettingsError, match="TRANSPORT: no enabled plugin provides 'memory'"):
        create(tmp_path, plugins={"blocked": ["transport_memory"]})


class DropFooAgent:
    """A third-party enricher: drops events from a (made-up) browser called FooAgent."""

    name = "drop_foo"
    order = 150

    def enrich(self, event: Event, context: EnrichContext) -> Event | None:
        if "FooAgent" in context.user_agent:
            return None
        event.browser = "Test Browser"
        return event


class ThirdParty:
    @hookimpl
    def register_enrichers(self, appliance: Any) -> list[Any]:
        return [DropFooAgent()]

    @hookimpl
    def register_routes(self, appliance: Any) -> list[Route]:
        return [Route("/hello", lambda request: PlainTextResponse("hi from a plugin"))]

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    async def startup(self, appliance: Any) -> None:
        self.calls.append("startup")

    @hookimpl
    def shutdown(self, appliance: Any) -> None:
        self.calls.append("shutdown")


def test_enricher_route_and_lifecycle_hooks(tmp_path: Path) -> None:
    plugin = ThirdParty()
    appliance = create(tmp_path, plugin)
    names = [e.name for e in appliance.enrichers]
    assert names == ["bots", "user_agent", "drop_foo", "country", "utm", "referrer", "visitor_id"]
    with make_client(create_app(appliance)) as client:
        assert plugin.calls == ["startup"]
        assert client.get("/hello").text == "hi from a plugin"
        browser = Browser(client)
        browser.setup_admin()
        browser.add_domain("example.com")
        foo = {"user-agent": BROWSER_UA + " FooAgent/1.0"}
        dropped = client.post("/api/events", json=event("/"), headers=foo)
        assert dropped.status_code == 202 and dropped.json() == {"accepted": 0, "filtered": 1}
        client.post("/api/events", json=event("/kept"))
        wait_for(lambda: appliance.processor.stats.events == 1)
        with appliance.stores[0].reader.locked() as conn:
            rows = conn.execute("SELECT path, browser FROM events").fetchall()
        assert [tuple(row) for row in rows] == [("/kept", "Test Browser")]
        assert appliance.ingest.stats.filtered == 1
    assert plugin.calls == ["startup", "shutdown"]


def test_entry_point_plugins_are_discovered_enabled_and_blocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "hello_plugin").mkdir(parents=True)
    (site / "hello_plugin" / "__init__.py").write_text(
        textwrap.dedent(
            """
            from appliance import hookimpl

            @hookimpl
            def settings_defaults():
                return {"hello": {"greeting": "hi"}}
            """
        )
    )
    dist = site / "hello_plugin-1.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-plugin\nVersion: 1.2\n")
    (dist / "entry_points.txt").write_text("[appliance]\nhello = hello_plugin\n")
    monkeypatch.syspath_prepend(str(site))

    # `enabled` keeps other installed plugins (the examples, say) out of this test.
    found = create(tmp_path, plugins={"autoload": True, "enabled": ["hello"]})
    [hello] = [plugin for plugin in found.plugins if plugin.name == "hello"]
    assert hello.source == "entry point of hello-plugin 1.2"
    assert found.settings.hello.greeting == "hi"
    assert "hello" not in [p.name for p in create(tmp_path, plugins={"autoload": False}).plugins]
    blocked = create(
        tmp_path, plugins={"autoload": True, "enabled": ["hello"], "blocked": ["hello"]}
    )
    assert "hello" not in [p.name for p in blocked.plugins]
    only_other = create(tmp_path, plugins={"autoload": True, "enabled": ["something_else"]})
    assert "hello" not in [p.name for p in only_other.plugins]
    assert json.dumps([p.name for p in only_other.plugins]).count("store_sqlite") == 1
