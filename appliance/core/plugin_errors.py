"""Name the plugin and the hook when a plugin raises, so the operator knows whom to ask.

pluggy lets a hook implementation's exception escape unchanged; with a dozen plugins a bare
``KeyError`` at start-up says nothing about which one broke. A hook-call monitor rewrites
the exception into a `PluginError` naming both (the original stays as ``__cause__``), and
wraps coroutines that async implementations return, so an ``async def startup`` that fails
when awaited is named too.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Mapping, Sequence
from types import CodeType, TracebackType
from typing import Any

import pluggy


class PluginError(Exception):
    """A plugin failed in a hook (or while being imported); the message names both."""

    def __init__(self, plugin: str, hook: str | None, error: BaseException) -> None:
        where = f"failed in hook {hook}" if hook else "failed to import"
        super().__init__(f"plugin {plugin!r} {where}: {type(error).__name__}: {error}")
        self.plugin = plugin
        self.hook = hook


def name_failures(manager: pluggy.PluginManager) -> None:
    """Install the monitor on `manager`; every later hook call goes through it."""

    def before(hook_name: str, hook_impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        return None

    def after(
        outcome: pluggy.Result[Any],
        hook_name: str,
        hook_impls: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, Any],
    ) -> None:
        error = outcome.exception
        if error is not None:
            if not isinstance(error, PluginError):
                culprit = _culprit(error.__traceback__, hook_impls)
                named = PluginError(culprit, hook_name, error)
                named.__cause__ = error
                outcome.force_exception(named)
            return
        result = outcome.get_result()
        if isinstance(result, list):
            if any(inspect.isawaitable(item) for item in result):
                outcome.force_result(_NamedAwaitables(result, hook_name, hook_impls).items)
        elif inspect.isawaitable(result):
            outcome.force_result(_NamedAwaitables([result], hook_name, hook_impls).items[0])

    manager.add_hookcall_monitoring(before, after)


def _code_of(impl: pluggy.HookImpl) -> CodeType | None:
    # Bound methods forward __code__ to their function; decorated callables may not have one.
    return getattr(impl.function, "__code__", None)


def _culprit(trace: TracebackType | None, hook_impls: Sequence[pluggy.HookImpl]) -> str:
    by_code = {_code_of(impl): impl.plugin_name for impl in hook_impls}
    while trace is not None:
        if trace.tb_frame.f_code in by_code:
            return by_code[trace.tb_frame.f_code]
        trace = trace.tb_next
    if len(hook_impls) == 1:
        return hook_impls[0].plugin_name
    return "<unknown>"


class _NamedAwaitables:
    """Wrap each awaitable of one hook call so a failure names its plugin.

    The caller awaits them one by one and stops at the first failure; the ones it never
    reaches are closed then, so they don't add "coroutine was never awaited" noise.
    """

    def __init__(self, items: list[Any], hook_name: str, hook_impls: Sequence[Any]) -> None:
        self.hook_name = hook_name
        self._unstarted: list[Any] = []
        self.items = [self._wrap(item, hook_impls) for item in items]

    def _wrap(self, item: Any, hook_impls: Sequence[pluggy.HookImpl]) -> Any:
        if not inspect.isawaitable(item):
            return item
        code = getattr(item, "cr_code", None)
        plugin = next((impl.plugin_name for impl in hook_impls if _code_of(impl) is code), None)
        wrapper = self._await(item, plugin or _culprit(None, hook_impls))
        self._unstarted.extend([item, wrapper])
        return wrapper

    async def _await(self, awaitable: Awaitable[Any], plugin: str) -> Any:
        self._unstarted = [c for c in self._unstarted if c is not awaitable]
        try:
            return await awaitable
        except Exception as error:
            self._close_unstarted()
            if isinstance(error, PluginError):
                raise
            raise PluginError(plugin, self.hook_name, error) from error

    def _close_unstarted(self) -> None:
        for item in self._unstarted:
            if inspect.iscoroutine(item) and inspect.getcoroutinestate(item) == "CORO_CREATED":
                item.close()
        self._unstarted.clear()
