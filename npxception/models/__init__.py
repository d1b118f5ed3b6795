"""Models built from `npxception.nn` layers: Xception and its configurations."""

from .config import XceptionConfig
from .xception import SHORTCUT_BLOCKS, Xception, preprocess_input

__all__ = ["SHORTCUT_BLOCKS", "Xception", "XceptionConfig", "preprocess_input"]
