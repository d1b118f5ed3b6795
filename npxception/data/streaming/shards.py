"""Reading one webdataset-style tar shard into index rows, with every byte accounted for.

Python's tarfile stops without a word at a truncated or corrupt member header, and only says
"unexpected end of data" when the data of the last member is cut. A shard copied incompletely
would then train on the samples before the cut as if they were all. So the end of a shard is
checked here: after its last member must come the end-of-archive marker (two 512-byte zero
blocks); anything else is a cut or a damage at a byte offset we name.

Also refused, rather than dropped without a word:

- a member that is not a regular file (a symbolic or hard link, a device, a sparse file): its
  bytes are not at its offset, which is all a worker reads;
- two images, or two labels, for one key (KEY.jpg and KEY.png): which one is the sample would
  depend on member order. webdataset refuses duplicate keys too; a dataset meaning two samples
  must give them two keys;
- an image without a label, or a label without an image (KEY.cls beside a KEY.bmp, say);
- a label that is not a small non-negative integer (a `.cls` of 99999999999 would make a
  10^11-entry class list).

With `skip_bad` (--skip-bad-images) a cut, non-regular members and incomplete samples are left
out with one logged warning per shard that counts them and the samples kept; duplicate keys and
bad labels stay errors, since no choice between them is right. Other members (KEY.json,
KEY.txt: metadata) and directories are not part of a sample and are ignored.
"""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path

from ..dataset import DatasetError
from ..files import MAX_UNNAMED_CLASSES

log = logging.getLogger("npxception.data")
SHARD_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
BLOCK = 512
MAX_LABEL_BYTES = 32  # "99999\n" and then some; more is not a label


def split_key(name: str) -> tuple[str, str]:
    """("dir/KEY", ".ext") of member "dir/KEY.ext" (webdataset: the extension starts at the first dot)."""
    base = name.rsplit("/", 1)[-1]
    stem, dot, ext = base.partition(".")
    return name[:len(name) - len(base)] + stem, ("." + ext.lower() if dot else "")


def _members(path: Path) -> tuple[list[tarfile.TarInfo], int, str | None]:
    """The members tarfile finds, the offset where it stopped looking for the next header, and
    the error that stopped it, if one did after the first member."""
    members: list[tarfile.TarInfo] = []
    try:
        with tarfile.open(path, "r:") as tar:
            try:
                for member in tar:
                    members.append(member)
            except tarfile.ReadError as e:
                if not members:
                    raise
                # "unexpected end of data" says neither where nor which member: `_damage` does.
                return members, tar.offset, str(e)
            return members, tar.offset, None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DatasetError(f"{path}: cannot read as a tar shard ({type(e).__name__}: {e})") from None


def _damage(f, size: int, members: list[tarfile.TarInfo], end: int) -> tuple[int, str] | None:
    """(byte offset, what is wrong) when the shard does not end cleanly after its last member."""
    last = members[-1] if members else None
    if last is not None and last.offset_data + last.size > size:
        return size, (f"the file ends inside member {last.name!r}, whose {last.size} bytes start at byte "
                      f"{last.offset_data}")
    f.seek(end)
    tail = f.read(2 * BLOCK)
    if tail == bytes(2 * BLOCK):
        return None
    after = f"after member {last.name!r}" if last is not None else "after the last member"
    if not any(tail):
        return size, (f"the file ends {after} without the end-of-archive marker (two 512-byte zero blocks), "
                      "so members after it may be missing")
    if not any(tail[:BLOCK]):
        return end, f"a damaged end-of-archive marker {after}"
    if len(tail) < BLOCK:
        return size, f"the file ends inside the header of the member that starts at byte {end}"
    return end, f"an unreadable member header {after}, where tar stops reading"


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"hard link to {member.linkname!r}"
    if member.issparse():
        return "sparse file"
    return {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device",
            tarfile.FIFOTYPE: "fifo"}.get(member.type, f"member of tar type {member.type!r}")


def _read_label(f, member: tarfile.TarInfo, where: str) -> int:
    """The label of a .cls member, bounded before anything is sized by it."""
    if member.size > MAX_LABEL_BYTES:
        raise DatasetError(f"{where}:{member.name}: a .cls member must hold a class number, got {member.size} "
                           f"bytes (at most {MAX_LABEL_BYTES} expected)")
    f.seek(member.offset_data)
    text = f.read(member.size).decode("ascii", errors="replace").strip()
    if not text.isdigit():
        raise DatasetError(f"{where}:{member.name}: a .cls member must hold a non-negative integer label, "
                           f"got {text[:20]!r}")
    label = int(text)
    if label >= MAX_UNNAMED_CLASSES:
        raise DatasetError(f"{where}:{member.name}: label {label} is out of range; at most {MAX_UNNAMED_CLASSES} "
                           f"classes (labels 0..{MAX_UNNAMED_CLASSES - 1}) are accepted (number the classes from 0)")
    return label


def _samples(path: Path, members: list[tarfile.TarInfo]) -> tuple[dict, dict, list[str]]:
    """({key: image member}, {key: label member}, [non-regular member descriptions])."""
    images: dict = {}
    labels: dict = {}
    odd: list[str] = []
    for member in members:
        if member.isdir():
            continue
        if not member.isfile() or member.issparse():
            odd.append(f"{member.name!r} ({_kind(member)})")
            continue
        key, ext = split_key(member.name)
        table = labels if ext == ".cls" else images if ext in SHARD_IMAGE_SUFFIXES else None
        if table is None:
            continue
        if key in table:
            what = "two .cls labels" if table is labels else "two images"
            raise DatasetError(f"{path}: sample {key!r} has {what}, {table[key].name!r} and {member.name!r}; a key "
                               "must name one sample (webdataset refuses duplicate keys too)")
        table[key] = member
    return images, labels, odd


def scan_shard(path: Path, shard: int, rows: list, skip_bad: bool = False) -> list[str]:
    """Append (member name, shard, offset, size, label) for every sample of the shard; returns the
    notes on what was left out (only with `skip_bad`; otherwise each of those is a DatasetError)."""
    members, end, stopped = _members(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DatasetError(f"{path}: cannot read as a tar shard ({type(e).__name__}: {e})") from None
    with f:
        size = f.seek(0, 2)
        damage = _damage(f, size, members, end)
        if damage is None and stopped is not None:
            damage = end, f"tar stops reading there ({stopped})"
        if damage is not None and members and members[-1].offset_data + members[-1].size > size:
            members = members[:-1]  # the member that is cut
        images, labels, odd = _samples(path, members)
        values = {key: _read_label(f, member, str(path)) for key, member in labels.items()}
    problems = []
    complete = [key for key in images if key in labels]
    if damage is not None:
        problems.append(f"cut or damaged at byte {damage[0]}: {damage[1]}")
    if odd:
        problems.append(f"{len(odd)} member(s) not regular files, which a shard cannot serve by offset "
                        f"(archive with tar --dereference --hard-dereference), e.g. {odd[0]}")
    unlabelled = [key for key in images if key not in labels]
    if unlabelled:
        problems.append(f"sample {unlabelled[0]!r} has an image but no .cls label ({len(unlabelled)} such samples)")
    no_image = [key for key in labels if key not in images]
    if no_image:
        problems.append(f"sample {no_image[0]!r} has a .cls label but no image ({', '.join(SHARD_IMAGE_SUFFIXES)}) "
                        f"({len(no_image)} such samples)")
    if problems and not skip_bad:
        raise DatasetError(f"{path}: {problems[0]}; pass --skip-bad-images to leave such samples out and use the "
                           f"{len(complete)} complete ones")
    for key in complete:
        member = images[key]
        rows.append((member.name, shard, member.offset_data, member.size, values[key]))
    return [f"{path}: {'; '.join(problems)}; left out, {len(complete)} samples kept"] if problems else []
