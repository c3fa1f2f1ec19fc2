"""docs/plugins.md says what the code does: every hook as declared, every contract member."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from appliance.core import hookspecs
from appliance.core.aggregation import Batch, Counters
from appliance.core.auth import AuthProvider
from appliance.core.enrich import EnrichContext, Enricher
from appliance.core.panels import Panel, PanelView
from appliance.core.settings import load_settings
from appliance.core.stores import Store
from appliance.core.transport import Delivery, Offset, Position, Transport

DOC_PATH = Path(__file__).parents[1] / "docs" / "plugins.md"
DOC = DOC_PATH.read_text()
SPECS = {
    name: function
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(function, "appliance_spec")
}


@dataclasses.dataclass
class DocumentedHook:
    signature: str
    firstresult: str
    may_be_async: str


def documented_hooks(text: str) -> dict[str, DocumentedHook]:
    """The `### `name`` entries of the "Hook reference" section."""
    reference = text.split("\n## Hook reference\n", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^### `(\w+)`$", reference, flags=re.MULTILINE)
    hooks = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        signature = re.search(r"```python\n(def [^\n]+)\n```", body)
        firstresult = re.search(r"^- \*\*firstresult\*\*: (yes|no)\b", body, re.MULTILINE)
        may_be_async = re.search(r"^- \*\*May be async\*\*: (yes|no)\b", body, re.MULTILINE)
        assert signature and firstresult and may_be_async, f"{name}: incomplete entry"
        hooks[name] = DocumentedHook(
            signature.group(1), firstresult.group(1), may_be_async.group(1)
        )
    return hooks


def declared_signature(spec: Any) -> str:
    """`def name(param: Annotation) -> Return`, from the spec's (string) annotations."""
    signature = inspect.signature(spec)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
    return f"def {spec.__name__}({params}) -> {signature.return_annotation}"


DOCUMENTED = documented_hooks(DOC)


def test_every_hook_is_documented_and_no_other() -> None:
    assert len(SPECS) >= 12
    assert sorted(DOCUMENTED) == sorted(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_documented_signature_matches_the_spec(name: str) -> None:
    assert DOCUMENTED[name].signature == declared_signature(SPECS[name])


@pytest.mark.parametrize("name", sorted(SPECS))
def test_documented_firstresult_and_async_match_the_spec(name: str) -> None:
    spec = SPECS[name]
    firstresult = "yes" if spec.appliance_spec["firstresult"] else "no"
    assert DOCUMENTED[name].firstresult == firstresult
    may_be_async = "yes" if "May be async" in (inspect.getdoc(spec) or "") else "no"
    assert DOCUMENTED[name].may_be_async == may_be_async


def test_the_parser_notices_a_changed_signature() -> None:
    changed = DOC.replace(
        "def register_stores(appliance: Appliance) -> list[Store]",
        "def register_stores(appliance: Appliance, extra: int) -> list[Store]",
    )
    assert changed != DOC
    assert documented_hooks(changed)["register_stores"].signature != declared_signature(
        SPECS["register_stores"]
    )
    missing = re.sub(r"### `startup`.*?(?=### `shutdown`)", "", DOC, flags=re.DOTALL)
    assert "startup" not in documented_hooks(missing)


def members(cls: type) -> list[str]:
    if dataclasses.is_dataclass(cls):
        return [field.name for field in dataclasses.fields(cls)]
    names = list(getattr(cls, "__annotations__", {}))
    names += [name for name, _ in inspect.getmembers(cls, inspect.isfunction)]
    return [name for name in names if not name.startswith("_")]


@pytest.mark.parametrize(
    "contract", [Store, Transport, Enricher, Panel, PanelView, AuthProvider, Batch, Counters]
)
def test_every_contract_member_is_documented(contract: type) -> None:
    for member in members(contract):
        assert re.search(rf"`{member}[`(]", DOC), f"{contract.__name__}.{member} undocumented"


@pytest.mark.parametrize("contract", [Position, Offset, Delivery, EnrichContext])
def test_small_records_are_documented_with_their_fields(contract: type) -> None:
    assert f"`{contract.__name__}({', '.join(members(contract))})`" in DOC


def test_documented_plugin_settings_exist() -> None:
    settings = load_settings()
    for key in ("plugins.autoload", "plugins.enabled", "plugins.blocked"):
        assert f"`{key}`" in DOC
        assert settings.get(key) is not None, key


def test_relative_links_point_at_files() -> None:
    for target in re.findall(r"\]\((\.\./[^)#]+)", DOC):
        assert (DOC_PATH.parent / target).exists(), target
