"""Which answers the tests grade: yours (`exercises/`) or, with NPXCEPTION_SOLUTIONS=1, the solutions."""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def answers(notebook: str) -> ModuleType:
    """The module of answers for `notebook` ("nb01" ... "nb07")."""
    package = "solutions" if os.environ.get("NPXCEPTION_SOLUTIONS") == "1" else "exercises"
    return importlib.import_module(f"{package}.{notebook}")
