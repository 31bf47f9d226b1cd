"""Every benchmark command that BENCHMARKS.md cites (`python benchmarks/X.py ...` in a code span or block, with or
without mpiexec in front) names a script in benchmarks/ and only options (and subcommands) that the script's own
argparse parser accepts today, so that its figures can be produced again. The parser is the one the script builds:
its main() is run with parse_args stopped before parsing, and the options and subcommands read from it."""

import argparse
import os
import re
import shlex
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
DOC = os.path.join(ROOT, "BENCHMARKS.md")
#: a command's words end at the end of its code span or line, or at a shell separator or comment
CITED = re.compile(r"benchmarks/([\w.-]+\.py)([^;&|>#\n]*)")


def code(text: str) -> list:
    """The code of the document: fenced and indented blocks (a line ending in a backslash joined with the next)
    and inline spans (which may wrap over lines: joined)."""
    found, rest = [], []
    lines = text.split("\n")
    fenced = False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
            rest.append("")
        elif fenced or line.startswith("    "):
            found.append(line)
            rest.append("")
        else:
            rest.append(line)
    blocks = re.sub(r"\\\n", " ", "\n".join(found)).split("\n")
    spans = [m.group(1).replace("\n", " ") for m in re.finditer(r"`([^`]+)`", "\n".join(rest))]
    return blocks + spans


def cited(text: str) -> list:
    """(script, [words after it]) of each benchmark command in the code of `text`."""
    return [(m.group(1), shlex.split(m.group(2))) for piece in code(text) for m in CITED.finditer(piece)]


class _Built(Exception):
    def __init__(self, parser):
        super().__init__()
        self.parser = parser


def built_parser(script: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser `script`'s main() builds (its parse_args raises before parsing)."""
    def stop(self, args=None, namespace=None):
        raise _Built(self)

    monkeypatch.syspath_prepend(BENCH)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop)
    monkeypatch.setattr(sys, "argv", [script])
    name = script[:-3]
    sys.modules.pop(name, None)
    module = __import__(name)
    try:
        module.main()
    except _Built as built:
        return built.parser
    raise AssertionError(f"{script}'s main() parsed no arguments")


def unknown(parser: argparse.ArgumentParser, words: list) -> list:
    """The words of a command line that `parser` does not accept: options it has not (`--name` or `--name=value`),
    and a subcommand not among its choices (the words after a subcommand checked against its own parser)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    bad = []
    for i, word in enumerate(words):
        if word.startswith("-") and not re.fullmatch(r"-\d.*", word):
            if word.split("=", 1)[0] not in parser._option_string_actions:
                bad.append(word)
        elif subs and not any(w.startswith("-") for w in words[:i]) and i == 0:
            if word not in subs[0].choices:
                return [*bad, word]
            return [*bad, *unknown(subs[0].choices[word], words[1:])]
    return bad


def test_the_document_cites_benchmark_commands():
    """The parsing finds the commands (more than a handful, with wrapped spans and continued block lines joined)."""
    commands = cited(open(DOC, encoding="utf-8").read())
    assert len(commands) >= 40, commands
    assert ("tune_table1.py", ["runs/tune_relu_deep", "--hand", "jobs/table1_relu_deep.toml", "jobs/table1_relu.toml",
                               "--seeds", "101", "202", "303"]) in commands, commands


def test_unknown_options_are_found(monkeypatch):
    """An option or subcommand a script has not is reported; those it has are not."""
    parser = built_parser("bench_flow_mpi.py", monkeypatch)
    assert unknown(parser, ["scaling", "--n", "2000", "--steps", "2"]) == []
    assert unknown(parser, ["scaling", "--profile"]) == ["--profile"]
    assert unknown(parser, ["strong", "--n", "2"]) == ["strong"]


@pytest.mark.parametrize("script", sorted({s for s, _ in cited(open(DOC, encoding="utf-8").read())}))
def test_cited_commands_exist(script, monkeypatch):
    commands = [words for s, words in cited(open(DOC, encoding="utf-8").read()) if s == script]
    assert os.path.isfile(os.path.join(BENCH, script)), f"BENCHMARKS.md cites benchmarks/{script}, which is not there"
    parser = built_parser(script, monkeypatch)
    bad = [(" ".join(words), unknown(parser, words)) for words in commands if unknown(parser, words)]
    assert not bad, f"benchmarks/{script} accepts none of these in the commands BENCHMARKS.md cites: {bad}"


#: what BENCHMARKS.md says after a figure whose command or script the repository does not hold
NOT_HERE = "command not in the repository"


def test_scripts_the_document_cites_are_here_or_marked():
    """A Python file the document cites in code (a path) is in the repository, or the figure says it is not
    (`NOT_HERE` right after it): /work/exp/prof3.py was cited for a per-step figure without it."""
    text = " ".join(open(DOC, encoding="utf-8").read().split())
    missing = []
    for m in re.finditer(r"`[^`]*?([\w./-]+\.py)\b[^`]*`", text):
        path = m.group(1)
        here = os.path.isfile(os.path.join(ROOT, path.lstrip("./"))) or os.path.isfile(os.path.join(ROOT, "tests",
                                                                                                     path))
        if not here and NOT_HERE not in text[m.end():m.end() + 40]:
            missing.append(path)
    assert not missing, f"BENCHMARKS.md cites {missing}, not in the repository; mark the figure ({NOT_HERE})"
