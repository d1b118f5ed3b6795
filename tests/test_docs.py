"""The documentation names only what exists: README.md, docs/*.md and the package READMEs.

Every relative link (and its #anchor) and every backticked repository path resolves; every
`npxception` command shown uses a real command and real flags, and a command in a shell block
parses with the CLI's own parser; flags given to a benchmark script are defined in it; Python
blocks compile and import only names that exist; the cheap commands run. Long commands (training,
the GPU check, mpiexec runs, make train) are only parsed, never run.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import glob
import importlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# README.md, docs/, and the package pages they send readers to (tutorials/ has its own tests).
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         *sorted((ROOT / "npxception").glob("**/README.md")), ROOT / "benchmarks" / "README.md"]
PAGE_IDS = [str(p.relative_to(ROOT)) for p in PAGES]

REPO_PREFIXES = ("npxception/", "benchmarks/", "tests/", "tutorials/", "docs/", ".ci/")
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>&1"}
FENCE = re.compile(r"^[ \t]*```([^\n`]*)\n(.*?)^[ \t]*```[ \t]*$", re.S | re.M)  # also inside list items
INLINE = re.compile(r"(?<!`)`([^`]+)`(?!`)")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
DOTTED = re.compile(r"\bnpxception(?:\.[A-Za-z_]\w*)+")
FLAG = re.compile(r"^--?[A-Za-z][\w-]*")
# Cheap commands that must run whatever the pages show: the entry point, a parser, a model summary.
ALWAYS_RUN = [["summary", "--preset", "tiny"], ["train", "--help"], ["gradcheck", "--help"]]


# --------------------------------------------------------------------------- reading a page

def fences(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block."""
    return [(m.group(1).strip().lower(), m.group(2)) for m in FENCE.finditer(text)]


def prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return FENCE.sub("", text)


def inline_code(text: str) -> list[str]:
    return [" ".join(m.group(1).split()) for m in INLINE.finditer(prose(text))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    found, seen = set(), {}
    for line in prose(text).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def shell_lines(body: str) -> list[list[str]]:
    """The words of each command of a shell block, continuation lines joined, comments dropped."""
    commands = []
    for line in body.replace("\\\n", " ").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            words = line.split("#")[0].split()
        if words:
            commands.append(words)
    return commands


def words_of(snippet: str) -> list[str]:
    try:
        return shlex.split(snippet, comments=True)
    except ValueError:
        return snippet.split()


# --------------------------------------------------------------------------- the CLI

def _cli():
    from npxception.cli.parser import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    top = {s for a in parser._actions for s in a.option_strings}
    flags = {name: top | {s for a in sub._actions for s in a.option_strings}
             for name, sub in subparsers.choices.items()}
    return parser, top, flags


PARSER, TOP_FLAGS, COMMAND_FLAGS = _cli()


def npxception_calls(words: list[str]) -> list[list[str]]:
    """The argument lists (starting with the command) of every `npxception` call in one command line:
    `npxception ...`, `/path/bin/npxception ...` (under mpiexec too) and `make train ARGS="..."`."""
    calls = []
    if words[:2] == ["make", "train"]:
        args = [w.split("=", 1)[1] for w in words[2:] if w.startswith("ARGS=")]
        calls.append(["train", *words_of(args[0] if args else "")])
    for i, word in enumerate(words):
        if os.path.basename(word) != "npxception" or word.endswith("/"):
            continue
        rest = []
        for w in words[i + 1:]:
            if w in SHELL_OPERATORS:
                break
            rest.append(w)
        calls.append(rest)
    return calls


def command_problems(argv: list[str], where: str, parse: bool) -> list[str]:
    """What is wrong with `npxception <argv>`: an unknown command or flag, or (with `parse`) a
    command line the parser refuses."""
    words = [w for w in argv if w not in TOP_FLAGS]
    if not words or words[0].startswith("<"):
        return []  # `npxception` alone, or a placeholder such as `npxception <command> --help`
    command = words[0]
    if command not in COMMAND_FLAGS:
        return [f"{where}: `npxception {command}`: no such command (commands: {', '.join(COMMAND_FLAGS)})"]
    problems = [f"{where}: `npxception {command} {w.split('=')[0]}`: no such flag"
                for w in words[1:] if FLAG.match(w) and w.split("=")[0] not in COMMAND_FLAGS[command]]
    if parse and not problems:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                PARSER.parse_args(argv)
            except SystemExit as stop:
                if stop.code:
                    lines = err.getvalue().strip().splitlines()
                    problems.append(f"{where}: `npxception {' '.join(argv)}` is refused: "
                                    f"{lines[-1] if lines else stop.code}")
    return problems


def script_problems(words: list[str], where: str) -> list[str]:
    """Flags given to a repository script (`python benchmarks/x.py --flag`) must be defined in it."""
    problems = []
    for i, word in enumerate(words):
        if not (word.endswith(".py") and word.startswith(REPO_PREFIXES)) or not (ROOT / word).is_file():
            continue
        source = (ROOT / word).read_text()
        for w in words[i + 1:]:
            if w in SHELL_OPERATORS:
                break
            flag = w.split("=")[0]
            if flag.startswith("--") and FLAG.match(flag) and f'"{flag}"' not in source and f"'{flag}'" not in source:
                problems.append(f"{where}: `{word} {flag}`: the script defines no such flag")
    return problems


# --------------------------------------------------------------------------- the checks

def link_problems(text: str, page: Path) -> list[str]:
    problems = []
    for target in LINK.findall(prose(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        if not path_part:  # a heading of this page
            if anchor not in anchors(text):
                problems.append(f"{page.name}: link to {target}: no such heading on this page")
            continue
        dest = (page.parent / path_part).resolve()
        if not dest.exists():
            problems.append(f"{page.name}: link to {target}: {path_part} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            problems.append(f"{page.name}: link to {target}: {dest.name} has no heading #{anchor}")
    return problems


def path_tokens(text: str) -> list[str]:
    """Repository paths named in inline code and in code blocks other than Python."""
    snippets = inline_code(text) + [body for lang, body in fences(text) if lang != "python"]
    tokens = []
    for snippet in snippets:
        for word in re.split(r"[\s,;()\"'=]+", snippet):
            word = word.rstrip(".:")
            if word.startswith(REPO_PREFIXES) and not re.search(r"[<>{}$]", word):
                tokens.append(word)
    return tokens


def missing_paths(text: str) -> list[str]:
    missing = []
    for token in path_tokens(text):
        found = glob.glob(str(ROOT / token)) if "*" in token else (ROOT / token).exists()
        if not found:
            missing.append(token)
    return missing


def cli_problems(text: str, page_name: str) -> list[str]:
    problems = []
    for lang, body in fences(text):
        if lang in SHELL_LANGUAGES:
            for words in shell_lines(body):
                for argv in npxception_calls(words):
                    problems += command_problems(argv, page_name, parse=True)
                problems += script_problems(words, page_name)
    for snippet in inline_code(text):
        words = words_of(snippet)
        for argv in npxception_calls(words):
            problems += command_problems(argv, page_name, parse=False)
        problems += script_problems(words, page_name)
    return problems


def resolves(name: str) -> bool:
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def python_problems(text: str, page_name: str) -> list[str]:
    problems = []
    for lang, body in fences(text):
        if lang != "python":
            continue
        try:
            tree = ast.parse(body, page_name)
        except SyntaxError as e:
            problems.append(f"{page_name}: a Python block does not compile: {e}")
            continue
        for node in tree.body:
            if getattr(node, "module", None) and node.module.split(".")[0] == "npxception":
                problems += [f"{page_name}: from {node.module} import {a.name}: no such name"
                             for a in node.names if not resolves(f"{node.module}.{a.name}")]
    names = set(DOTTED.findall(" ".join(inline_code(text))))
    problems += [f"{page_name}: `{name}` does not exist" for name in sorted(names) if not resolves(name)]
    return problems


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_links_resolve(page):
    problems = link_problems(page.read_text(), page)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_named_repository_paths_exist(page):
    missing = missing_paths(page.read_text())
    assert not missing, f"{page.name} names missing paths: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_commands_and_flags_exist(page):
    problems = cli_problems(page.read_text(), page.name)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_python_blocks_name_real_things(page):
    problems = python_problems(page.read_text(), page.name)
    assert not problems, "\n".join(problems)


def _cheap_commands() -> list[list[str]]:
    """ALWAYS_RUN, and every `summary` and `--help` call in the pages' shell blocks."""
    commands = [list(c) for c in ALWAYS_RUN]
    for page in PAGES:
        for lang, body in fences(page.read_text()):
            if lang not in SHELL_LANGUAGES:
                continue
            for words in shell_lines(body):
                for argv in npxception_calls(words):
                    cheap = argv and (argv[0] == "summary" or "--help" in argv)
                    if cheap and not argv[0].startswith("<") and argv not in commands:
                        commands.append(argv)
    return commands


def test_cheap_commands_run():
    """The cheap commands run, side by side, and the README's parameter counts are what they print."""
    commands = _cheap_commands()
    commands += [c for c in (["summary", "--preset", p] for p in ("paper", "small")) if c not in commands]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [(argv, subprocess.Popen([sys.executable, "-m", "npxception", *argv], cwd=ROOT, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
            for argv in commands]
    outputs = {}
    for argv, proc in runs:
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            pytest.fail(f"`npxception {' '.join(argv)}` ran past 60 s:\n{out[-2000:]}")
        assert proc.returncode == 0, f"`npxception {' '.join(argv)}` exited {proc.returncode}:\n{out[-2000:]}"
        outputs[" ".join(argv)] = out
    readme = (ROOT / "README.md").read_text()
    for preset, count in (("paper", "22,855,952"), ("small", "722,576")):
        assert f"Trainable params: {count}" in outputs[f"summary --preset {preset}"], preset
        assert count in readme, f"README no longer gives {preset}'s {count} trainable parameters"


def test_readme_quick_start_is_make_train_and_make_test():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = fences(section)
    assert len(blocks) == 1, "the quick start has one code block"
    assert [words[:2] for words in shell_lines(blocks[0][1])] == [["make", "train"], ["make", "test"]]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


BAD_PAGE = """# A page

## Real heading

See [a missing page](no/such/page.md), [a missing heading](#not-a-heading),
[the right one](#real-heading) and `npxception/no_such_module.py`, `tests/` and
`npxception.not_a_module`.

```bash
npxception train --epochs 2 --no-such-flag 3
npxception frobnicate --x
mpiexec -n 2 npxception train --optimizer not-an-optimizer
PYTHONPATH=. python benchmarks/gpu_check.py --sim --not-a-check-flag
```

Inline: `npxception evaluate RUN --jsonn`, `make train ARGS="--epoch 2"`.

```python
from npxception import Xception, NoSuchThing
```
"""


def test_the_checker_catches_a_bad_page():
    page = ROOT / "docs" / "bad_example.md"  # only for resolving links; never written
    links = link_problems(BAD_PAGE, page)
    assert len(links) == 2
    assert any("no/such/page.md does not exist" in p for p in links)
    assert any("#not-a-heading: no such heading" in p for p in links)
    assert missing_paths(BAD_PAGE) == ["npxception/no_such_module.py"]
    cli = cli_problems(BAD_PAGE, "bad.md")
    expected = ["`npxception train --no-such-flag`: no such flag", "`npxception frobnicate`: no such command",
                "not-an-optimizer", "`benchmarks/gpu_check.py --not-a-check-flag`", "`npxception evaluate --jsonn`",
                "`npxception train --epoch`: no such flag"]
    for text in expected:
        assert sum(text in p for p in cli) == 1, (text, cli)
    assert len(cli) == len(expected), cli
    py = python_problems(BAD_PAGE, "bad.md")
    assert py == ["bad.md: from npxception import NoSuchThing: no such name",
                  "bad.md: `npxception.not_a_module` does not exist"]
