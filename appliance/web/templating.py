"""Jinja2 with autoescaping on: the core's templates first, then each plugin's."""

from __future__ import annotations

from typing import Any

import jinja2
from starlette.templating import Jinja2Templates

from appliance.core.plugins import flatten
from appliance.resources import resource_path


def build_templates(manager: Any) -> Jinja2Templates:
    directories = [str(resource_path("templates"))] + flatten(manager.hook.template_dirs())
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directories),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return Jinja2Templates(env=environment)
