"""Models built from `npxception.nn` layers: Xception and its configurations."""

from .config import SHORTCUT_BLOCKS, XceptionConfig
from .xception import Xception, preprocess_input

__all__ = ["SHORTCUT_BLOCKS", "Xception", "XceptionConfig", "preprocess_input"]
