"""Class names from a file beside the data: `classes.txt` (line k = the name of label k) or
`classes.json` (a list of names, or {name: label}).

Tar shards carry only numeric labels (`KEY.cls`); without such a file their classes are "0".."K-1",
K = the largest label + 1. With one, the names reach the checkpoint, the confusion matrix and
`predict`, and a validation shard lacking the last class still has every class. The file is read
on every run (it is not part of the index cache), so editing it takes effect at once; a resumed
run whose names changed is refused by the checkpoint's class-name check.
"""

from __future__ import annotations

import json
from pathlib import Path

from .dataset import DatasetError

CLASS_FILES = ("classes.txt", "classes.json")


def class_file(folder: Path) -> Path | None:
    """The class-name file in `folder`, None when there is none; both kinds at once are refused,
    since which one names the classes would be a guess."""
    found = [folder / name for name in CLASS_FILES if (folder / name).is_file()]
    if len(found) > 1:
        raise DatasetError(f"{folder}: holds both {found[0].name} and {found[1].name}; keep the one that names "
                           "the classes")
    return found[0] if found else None


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read the class names ({type(e).__name__}: {e})") from None


def _from_txt(path: Path) -> list[str]:
    lines = _text(path).splitlines()
    while lines and not lines[-1].strip():  # a final newline, or blank lines after the last name
        lines.pop()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise DatasetError(f"{path}: line {number} is empty; every line up to the last names one class "
                               f"(line k names label k - 1)")
    return [line.strip() for line in lines]


def _from_json(path: Path) -> list[str]:
    try:
        value = json.loads(_text(path))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None
    if isinstance(value, dict):
        return _from_mapping(path, value)
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise DatasetError(f"{path}: expected a list of class names or an object {{name: label}}, got "
                           f"{_shown(value)}")
    return [name.strip() for name in value]


def _from_mapping(path: Path, mapping: dict) -> list[str]:
    labels = list(mapping.values())
    if not all(isinstance(label, int) and not isinstance(label, bool) for label in labels):
        raise DatasetError(f"{path}: an object of class names must map each name to an integer label, got "
                           f"{_shown(mapping)}")
    if sorted(labels) != list(range(len(labels))):
        raise DatasetError(f"{path}: the labels of its {len(labels)} names must be 0..{len(labels) - 1}, each "
                           f"once, got {sorted(labels)[:8]}{' ...' if len(labels) > 8 else ''}")
    by_label = sorted((label, name.strip()) for name, label in mapping.items())
    return [name for _, name in by_label]


def _shown(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_class_names(path: Path) -> tuple[str, ...]:
    """The names in a classes.txt or classes.json, checked to be non-empty and unique."""
    names = _from_json(path) if path.suffix == ".json" else _from_txt(path)
    if not names:
        raise DatasetError(f"{path}: names no classes; expected one name per class")
    if not all(names):
        raise DatasetError(f"{path}: class {names.index('')} has an empty name; every class needs one")
    seen: dict[str, int] = {}
    for label, name in enumerate(names):
        if name in seen:
            raise DatasetError(f"{path}: the name {name!r} is given to classes {seen[name]} and {label}; "
                               "class names must be unique")
        seen[name] = label
    return tuple(names)


def names_for_labels(folder: Path, largest_label: int) -> tuple[str, ...] | None:
    """The class names in `folder`'s class file, checked to name every label up to `largest_label`;
    None when the folder has no class file."""
    path = class_file(folder)
    if path is None:
        return None
    names = read_class_names(path)
    if largest_label >= len(names):
        raise DatasetError(f"{path}: names {len(names)} classes (labels 0..{len(names) - 1}), but the data holds "
                           f"label {largest_label}; add the missing names or fix the labels")
    return names
