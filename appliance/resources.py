"""Find the files shipped beside the code, in a source checkout or an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def resource_path(name: str) -> Path:
    """`templates`, `tracker` or `settings.toml`: inside the wheel, else at the repo root."""
    packaged = _PACKAGE_DIR / name
    if packaged.exists():
        return packaged
    return _PACKAGE_DIR.parent / name
