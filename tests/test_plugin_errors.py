"""A plugin that raises is named, with the hook it failed in, wherever the failure surfaces."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from appliance import hookimpl
from appliance.app import create_app
from appliance.core.panels import Panel
from appliance.core.plugin_errors import PluginError
from tests.conftest import make_appliance, make_client


class GoodPanels:
    @hookimpl
    def register_panels(self, appliance: Any) -> list[Panel]:
        return []


class BrokenPanels:
    @hookimpl
    def register_panels(self, appliance: Any) -> list[Panel]:
        return [appliance.settings.no_such_section.panel]


class BrokenStartup:
    @hookimpl
    async def startup(self, appliance: Any) -> None:
        raise ConnectionRefusedError("the plugin's backend is down")


def test_a_failing_hook_names_the_plugin_among_several(tmp_path: Path) -> None:
    with pytest.raises(PluginError) as raised:
        make_appliance(tmp_path / "data", (BrokenPanels(), GoodPanels()))
    assert str(raised.value).startswith(
        "plugin 'BrokenPanels' failed in hook register_panels: AttributeError:"
    )
    assert (raised.value.plugin, raised.value.hook) == ("BrokenPanels", "register_panels")
    assert isinstance(raised.value.__cause__, AttributeError)


def test_an_async_hook_is_named_when_it_fails_while_awaited(tmp_path: Path) -> None:
    appliance = make_appliance(tmp_path / "data", (BrokenStartup(),))
    with pytest.raises(PluginError) as raised, make_client(create_app(appliance)):
        pass
    assert str(raised.value) == (
        "plugin 'BrokenStartup' failed in hook startup:"
        " ConnectionRefusedError: the plugin's backend is down"
    )
    # Nobody calls stop() after a failed start: start() released what it had opened.
    for store in appliance.stores:
        with pytest.raises(RuntimeError, match="not open"):
            store.reader  # noqa: B018


def broken_distribution(site: Path) -> None:
    """An installed distribution whose `appliance` entry point fails to import."""
    (site / "broken_plugin").mkdir(parents=True)
    (site / "broken_plugin" / "__init__.py").write_text(
        textwrap.dedent(
            """
            import no_such_dependency_of_the_plugin
            """
        )
    )
    dist = site / "broken_plugin-0.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text("[appliance]\nbroken = broken_plugin\n")


def test_an_entry_point_that_fails_to_import_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken_distribution(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(PluginError, match="plugin 'broken' failed to import: ModuleNotFoundError"):
        make_appliance(tmp_path / "data", plugins={"autoload": True})
    assert make_appliance(tmp_path / "data", plugins={"autoload": True, "blocked": ["broken"]})


def test_the_cli_prints_the_traceback_then_one_line_naming_the_plugin(tmp_path: Path) -> None:
    broken_distribution(tmp_path / "site")
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env |= {
        "PYTHONPATH": str(tmp_path / "site"),
        "APPLIANCE_DATA_DIR": str(tmp_path / "data"),
        "APPLIANCE_PLUGINS__AUTOLOAD": "true",
    }
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "plugins"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "import no_such_dependency_of_the_plugin" in result.stderr  # the traceback
    assert result.stderr.strip().splitlines()[-1] == (
        "appliance: plugin 'broken' failed to import: ModuleNotFoundError:"
        " No module named 'no_such_dependency_of_the_plugin'"
    )


class FailingBackgroundTask:
    @hookimpl
    def startup(self, appliance: Any) -> None:
        async def crash() -> None:
            raise ConnectionResetError("the plugin's feed dropped")

        appliance.background(crash(), name="failing-feed")


def test_a_failed_background_task_is_logged_and_stop_still_closes_the_stores(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    appliance = make_appliance(tmp_path / "data", (FailingBackgroundTask(),))

    async def run() -> None:
        await appliance.start(serve=False, process=False)
        await asyncio.sleep(0.05)  # the task fails
        await appliance.stop()

    asyncio.run(run())
    assert "background task failing-feed had failed" in caplog.text
    assert "the plugin's feed dropped" in caplog.text
    for store in [appliance.accounts, *appliance.stores]:
        with pytest.raises(RuntimeError, match="not open"):
            store.db if store is appliance.accounts else store.reader  # noqa: B018
