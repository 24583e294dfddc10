"""Where the data files live, both in an installed wheel and in a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def schemas_dir() -> Path:
    """The ``schemas/`` folder: packaged into the wheel, or the checkout's top-level copy."""
    packaged = _PACKAGE / "schemas"
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / "schemas"
