"""The console examples of the user documentation run, and print what the documents show.

Every fenced block with ``$ `` prompts in ``DOCUMENTS`` is preceded by ``<!-- example -->`` (run
here) or ``<!-- illustrative -->`` (cannot run in the suite: docker compose, S3, a Gowalla run). A
document's examples run in order as one shell session in a fresh temporary directory, on data that
the examples generate themselves:

- ``hashrec ...`` runs the real command line in-process (``hashrec.cli.main``); ``hashrec serve
  ... &`` runs the real ``serve`` command up to ``uvicorn.run`` and serves the app it would have
  started through Starlette's TestClient instead;
- ``curl ...`` is sent to that app (a pipe after it, such as ``| grep``, runs in bash on curl's
  output); ``export A=B``, ``A=B command`` and ``echo $?`` act as in a shell; anything else runs in
  bash in the session's directory.

Output is compared by shape, not by volatile values. JSON lines: the same keys, the same types,
equal integers, booleans and nulls, strings compared as text. Text: version names, timestamps,
``user@host:pid``, generated user and item ids (``u001``, ``i042``) and decimal numbers are
normalized; integers and everything else must be equal; runs of spaces count as one. ``...``
stands for anything: inside a line, any text; as a whole line, any number of lines; in JSON,
``{...}``/``[...]`` or a ``...`` value any value, a trailing ``, ...`` in a list more elements of
the shape shown, in an object more keys. A version name a document shows stands for the real one
printed at that place, consistently: later commands that name it get the real name. One timing
rule: a `hashrec store diff` lists `metrics.train_seconds` only when the two rounded timings differ,
so that line is left out of both sides and the change count lowered to match.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The documents whose console examples are checked (paths relative to the repository root).
DOCUMENTS = ["README.md", "model_store/FORMAT.md", "docs/operations.md", "docs/indexing.md"]
TAG = re.compile(r"^<!-- (example|illustrative) -->$")
FENCE = re.compile(r"^(`{3,}|~{3,})")

VERSION = re.compile(r"\bv\d{8}-\d{6}-[0-9a-f]{6}\b")
TIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:\d{2}|Z)?")
WHO = re.compile(r"[\w.-]+@[\w.-]+:\d+")
ITEM_OR_USER_ID = re.compile(r"\b[ui]\d+\b")
DECIMAL = re.compile(r"[+-]?\d[\d,]*\.\d+(?:e[+-]?\d+)?")
#: A `hashrec store diff` line of a timing, and the diff's count of changes.
TIMING_CHANGE = re.compile(r"^\s+metrics\.train_seconds: ")
CHANGE_COUNT = re.compile(r": (\d+) change\(s\)")
#: JSON placeholders for ``...`` in a shown JSON document.
ANY, MORE = "<<any>>", "<<more>>"


# ---------------------------------------------------------------- reading the documents


@dataclass
class Command:
    text: str
    expected: list[str]
    line: int  # 1-based line of the prompt in the document


@dataclass
class Example:
    document: str
    line: int  # 1-based line of the opening fence
    tag: str | None
    commands: list[Command]


def console_examples(text: str, document: str) -> list[Example]:
    """Every fenced block holding a line that starts with ``$ ``, with the tag before it."""
    lines = text.splitlines()
    examples: list[Example] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, start = opening.group(1), i
        i += 1
        body: list[tuple[int, str]] = []
        while i < len(lines) and not lines[i].startswith(fence):
            body.append((i + 1, lines[i]))
            i += 1
        i += 1
        if not any(line.startswith("$ ") for _, line in body):
            continue
        before = [line.strip() for line in lines[:start] if line.strip()]
        tag = TAG.match(before[-1]) if before else None
        examples.append(Example(document, start + 1, tag.group(1) if tag else None, commands_of(body)))
    return examples


def commands_of(body: list[tuple[int, str]]) -> list[Command]:
    """Prompts and the output lines after each; a prompt line ending in ``\\`` continues."""
    commands: list[Command] = []
    continued = False
    for number, line in body:
        if continued:
            commands[-1].text = commands[-1].text[:-1] + " " + line.strip()
        elif line.startswith("$ "):
            commands.append(Command(line[2:], [], number))
        elif commands:
            commands[-1].expected.append(line)
        else:
            raise AssertionError(f"line {number}: output before the first prompt")
        continued = bool(commands) and not commands[-1].expected and commands[-1].text.endswith("\\")
    return commands


def read_examples(document: str) -> list[Example]:
    return console_examples((ROOT / document).read_text(), document)


# ---------------------------------------------------------------- comparing output


def normalize(line: str) -> str:
    """A line with its volatile parts replaced by placeholders and spaces collapsed."""
    line = VERSION.sub("<V>", line)
    line = TIME.sub("<T>", line)
    line = WHO.sub("<WHO>", line)
    line = ITEM_OR_USER_ID.sub("<ID>", line)
    line = DECIMAL.sub("<F>", line)
    return re.sub(r"\s+", " ", line).rstrip()


def text_matches(expected: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in normalize(expected).split("..."))
    return re.fullmatch(pattern, normalize(actual)) is not None


def shown_json(text: str) -> Any:
    """A JSON document as a document shows it, ``...`` placeholders included."""
    text = text.replace("{...}", json.dumps(ANY)).replace("[...]", json.dumps(ANY))
    text = re.sub(r",\s*\.\.\.\s*(?=\])", f", {json.dumps(MORE)}", text)
    text = re.sub(r",\s*\.\.\.\s*(?=\})", f", {json.dumps(MORE)}: null", text)
    text = re.sub(r"(?<=:)\s*\.\.\.", f" {json.dumps(ANY)}", text)
    return json.loads(text)


def json_differences(expected: Any, actual: Any, where: str, strings: list[tuple[str, str]]) -> list[str]:
    """How ``actual`` differs in shape from ``expected``; matched strings are added to ``strings``."""
    if expected == ANY:
        return []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: an object was shown, got {actual!r}"]
        keys = set(expected) - {MORE}
        missing, extra = keys - set(actual), set(actual) - keys
        problems = [f"{where}: no key {key!r}" for key in sorted(missing)]
        if MORE not in expected:
            problems += [f"{where}: key {key!r} not shown" for key in sorted(extra)]
        for key in sorted(keys & set(actual)):
            problems += json_differences(expected[key], actual[key], f"{where}.{key}", strings)
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: a list was shown, got {actual!r}"]
        more = bool(expected) and expected[-1] == MORE
        shown = expected[:-1] if more else expected
        if len(actual) < len(shown) or (not more and len(actual) != len(shown)):
            return [f"{where}: {len(shown)}{'+' if more else ''} elements shown, got {len(actual)}"]
        problems = []
        for index, value in enumerate(actual):
            pattern = shown[min(index, len(shown) - 1)] if shown else ANY
            problems += json_differences(pattern, value, f"{where}[{index}]", strings)
        return problems
    if isinstance(expected, str):
        if not isinstance(actual, str) or not text_matches(expected, actual):
            return [f"{where}: {expected!r} shown, got {actual!r}"]
        strings.append((expected, actual))
        return []
    if isinstance(expected, bool) or expected is None or isinstance(expected, int):
        if type(actual) is not type(expected) or actual != expected:
            return [f"{where}: {expected!r} shown, got {actual!r}"]
        return []
    if not isinstance(actual, float):  # a float: any float
        return [f"{where}: a float shown, got {actual!r}"]
    return []


def line_match(expected: str, actual: str) -> list[tuple[str, str]] | None:
    """The (shown, printed) strings a matching line pairs up, or None if it does not match."""
    if expected.lstrip().startswith(("{", "[")):
        try:
            shown, printed = shown_json(expected), json.loads(actual)
        except ValueError:
            return [(expected, actual)] if text_matches(expected, actual) else None
        strings: list[tuple[str, str]] = []
        return strings if not json_differences(shown, printed, "$", strings) else None
    return [(expected, actual)] if text_matches(expected, actual) else None


def explain(expected: str, actual: str) -> str:
    """Why one line does not match, for the failure message."""
    try:
        problems = json_differences(shown_json(expected), json.loads(actual), "$", [])
    except ValueError:
        return f"shown:   {normalize(expected)}\nprinted: {normalize(actual)}"
    return "\n".join(problems)


def align(expected: list[str], actual: list[str]) -> list[tuple[str, str]] | None:
    """Pair shown lines with printed ones; a shown line ``...`` takes any number of lines."""
    memo: dict[tuple[int, int], list[tuple[str, str]] | None] = {}

    def solve(i: int, j: int) -> list[tuple[str, str]] | None:
        if (i, j) in memo:
            return memo[i, j]
        result: list[tuple[str, str]] | None = None
        if i == len(expected):
            result = [] if j == len(actual) else None
        elif expected[i].strip() == "...":
            for k in range(j, len(actual) + 1):
                rest = solve(i + 1, k)
                if rest is not None:
                    result = rest
                    break
        elif j < len(actual):
            pairs = line_match(expected[i], actual[j])
            rest = solve(i + 1, j + 1) if pairs is not None else None
            result = pairs + rest if pairs is not None and rest is not None else None
        memo[i, j] = result
        return result

    return solve(0, 0)


@dataclass
class Versions:
    """Which real version name each version name shown in a document stands for (one to one)."""

    real: dict[str, str] = field(default_factory=dict)

    def bind(self, shown: str, printed: str) -> None:
        names, real = VERSION.findall(shown), VERSION.findall(printed)
        if "..." in shown and len(names) != len(real):
            return
        assert len(names) == len(real), f"{shown!r}: {len(names)} versions shown, printed {printed!r}"
        for name, value in zip(names, real, strict=True):
            if self.real.setdefault(name, value) != value:
                raise AssertionError(f"{name} stood for {self.real[name]} before, here for {value}")
            others = [doc for doc, bound in self.real.items() if bound == value and doc != name]
            assert not others, f"{value} is shown as {others[0]} before and as {name} here"

    def substitute(self, command: str) -> str:
        def real(match: re.Match[str]) -> str:
            name = match.group(0)
            assert name in self.real, f"{name}: no earlier output of this document printed it"
            return self.real[name]

        return VERSION.sub(real, command)


def without_timings(lines: list[str]) -> list[str]:
    """``lines`` less the diff lines of a timing, with the change count they were part of lowered:
    a diff lists a timing only when the two rounded timings differ."""
    kept = [line for line in lines if not TIMING_CHANGE.match(line)]
    dropped = len(lines) - len(kept)
    if dropped:
        kept = [
            CHANGE_COUNT.sub(lambda m: f": {int(m.group(1)) - dropped} change(s)", line, count=1)
            for line in kept
        ]
    return kept


def check_output(command: Command, printed: str, versions: Versions) -> None:
    shown = list(command.expected)
    while shown and not shown[-1].strip():
        shown.pop()
    lines = printed.rstrip("\n").splitlines() if printed.strip() else []
    expected, actual = without_timings(shown), without_timings(lines)
    pairs = align(expected, actual)
    if pairs is None:
        detail = ""
        if len(expected) == len(actual):
            detail = "\n".join(
                explain(e, a) for e, a in zip(expected, actual, strict=True) if line_match(e, a) is None
            )
        raise AssertionError(
            f"line {command.line}: $ {command.text}\n--- shown\n"
            + "\n".join(shown)
            + "\n--- printed\n"
            + "\n".join(lines)
            + (f"\n--- differences\n{detail}" if detail else "")
        )
    for shown_text, real in pairs:
        versions.bind(shown_text, real)


# ---------------------------------------------------------------- running a session


class Session:
    """One document's shell session: a directory, variables, the last status, a served app."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env: dict[str, str] = {}
        self.status = 0
        self.versions = Versions()
        self.stack = contextlib.ExitStack()
        self.client: Any = None
        self.port = 0
        self.transcript: list[tuple[Command, str]] = []

    def close(self) -> None:
        self.stack.close()

    def run_example(self, example: Example) -> None:
        for command in example.commands:
            printed = self.run(self.versions.substitute(command.text))
            self.transcript.append((command, printed))
            check_output(command, printed, self.versions)

    @contextlib.contextmanager
    def environment(self, extra: dict[str, str]) -> Iterator[None]:
        saved = dict(os.environ)
        for name in [name for name in os.environ if name.startswith("HASHREC_")]:
            del os.environ[name]  # the documents show the defaults, not this machine's settings
        os.environ.update({**self.env, **extra})
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def run(self, text: str) -> str:
        words = shlex.split(text)
        assignments: dict[str, str] = {}
        while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
            name, _, value = words.pop(0).partition("=")
            assignments[name] = value
        if words[:1] == ["export"]:
            self.env.update(dict(word.partition("=")[::2] for word in words[1:]))
            self.status = 0
            return ""
        if words == ["echo", "$?"]:
            return f"{self.status}\n"
        if words[:1] == ["hashrec"] and "|" not in words:
            if words[1:2] == ["serve"]:
                assert words[-1] == "&", f"{text}: a foreground serve would never return"
                return self.serve(words[1:-1], assignments)
            return self.hashrec(words[1:], assignments)
        if words[:1] == ["curl"]:
            return self.curl(text)
        return self.shell(text, assignments)

    def hashrec(self, argv: list[str], extra: dict[str, str]) -> str:
        from hashrec.cli import main

        out = io.StringIO()
        with self.environment(extra), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                main(argv)
            except SystemExit as done:
                code = done.code
        self.status = code if isinstance(code, int) else (0 if code is None else 1)
        return out.getvalue()

    def serve(self, argv: list[str], extra: dict[str, str]) -> str:
        """The real ``serve`` command up to ``uvicorn.run``; its app then runs in TestClient."""
        import uvicorn
        from fastapi.testclient import TestClient
        from hashrec.service.app import create_app_from_env

        started: dict[str, Any] = {}

        def run(app: str, **options: Any) -> None:
            assert app == "hashrec.service.app:create_app_from_env" and options["factory"]
            client = TestClient(create_app_from_env())
            client.__enter__()  # the lifespan: loads the store's current version
            started.update(client=client, port=options["port"])

        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        try:  # serve routes the root logger to its stderr, here the command's output
            with mock.patch.object(uvicorn, "run", run):
                printed = self.hashrec(argv, extra)
        finally:
            root.handlers[:], root.level = handlers, level
        if started:
            self.stack.close()
            self.client, self.port = started["client"], started["port"]
            self.stack.callback(self.client.__exit__, None, None, None)
        return printed

    def curl(self, text: str) -> str:
        lexer = shlex.shlex(text, posix=True, punctuation_chars="|")
        lexer.whitespace_split = True
        words = list(lexer)
        rest = ""
        if "|" in words:
            rest = text[text.index("|") + 1 :]
            words = words[: words.index("|")]
        method, url, headers, data, write_out, quiet_body = None, None, {}, None, None, False
        options = iter(words[1:])
        for word in options:
            if word in ("-s", "--silent"):
                continue
            if word in ("-X", "--request"):
                method = next(options)
            elif word in ("-H", "--header"):
                name, _, value = next(options).partition(":")
                headers[name.strip()] = value.strip()
            elif word in ("-d", "--data", "--data-raw"):
                data = next(options)
            elif word == "-w":
                write_out = next(options)
            elif word == "-o":
                assert next(options) == "/dev/null", "curl -o: only /dev/null"
                quiet_body = True
            else:
                assert not word.startswith("-"), f"curl {word}: not understood by this test"
                url = word
        assert url is not None and self.client is not None, f"{text}: no URL, or no `hashrec serve &` yet"
        match = re.fullmatch(r"(?:http://)?(localhost|127\.0\.0\.1):(\d+)(/.*)", url)
        assert match and int(match.group(2)) == self.port, f"{url}: not the port `hashrec serve` uses"
        with self.environment({}):
            response = self.client.request(
                method or ("POST" if data is not None else "GET"),
                match.group(3),
                headers=headers,
                content=data.encode() if data is not None else None,
            )
        printed = "" if quiet_body else response.text
        if write_out is not None:
            printed += write_out.replace("%{http_code}", str(response.status_code)).replace("\\n", "\n")
        self.status = 0
        if rest:
            return self.shell(rest, {}, stdin=printed)
        return printed

    def shell(self, text: str, extra: dict[str, str], stdin: str | None = None) -> str:
        inherited = {name: value for name, value in os.environ.items() if not name.startswith("HASHREC_")}
        done = subprocess.run(
            ["bash", "-c", text],
            cwd=self.root,
            env={**inherited, "LC_ALL": "C", **self.env, **extra},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.status = done.returncode
        return done.stdout + done.stderr


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Session | Exception]]:
    """Each document's tested examples, run once; the error of a document whose run failed."""
    results: dict[str, Session | Exception] = {}
    previous = Path.cwd()
    try:
        for document in DOCUMENTS:
            root = tmp_path_factory.mktemp(Path(document).stem.lower())
            session = Session(root)
            os.chdir(root)
            try:
                for example in read_examples(document):
                    if example.tag == "example":
                        session.run_example(example)
                results[document] = session
            except Exception as err:
                results[document] = err
            finally:
                session.close()
                os.chdir(previous)
        yield results
    finally:
        os.chdir(previous)


# ---------------------------------------------------------------- the tests


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_console_example_is_tagged(document):
    untagged = [f"{document}:{e.line}" for e in read_examples(document) if e.tag is None]
    assert not untagged, "console examples without <!-- example --> or <!-- illustrative -->: " + ", ".join(
        untagged
    )


def test_the_readme_has_tested_examples_of_the_cli_the_store_and_the_http_api():
    commands = [c.text for e in read_examples("README.md") if e.tag == "example" for c in e.commands]
    for start in ("hashrec generate", "hashrec index", "hashrec evaluate", "hashrec store diff", "curl"):
        assert any(command.startswith(start) for command in commands), start
    assert any("HASHREC_ADMIN_TOKEN=" in command for command in commands)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_examples_print_what_the_document_shows(sessions, document):
    result = sessions[document]
    if isinstance(result, Exception):
        raise result


def _transcript(sessions: dict[str, Session | Exception], start: str) -> tuple[Command, str, Versions]:
    session = sessions["README.md"]
    if not isinstance(session, Session):
        pytest.fail(f"the README's examples did not run: {session}")
    for command, printed in session.transcript:
        if command.text.startswith(start):
            return command, printed, session.versions
    raise AssertionError(f"the README runs no {start!r}")


def _fails(command: Command, printed: str, versions: Versions, old: str, new: str) -> bool:
    text = "\n".join(command.expected)
    assert old in text, (old, text)
    wrong = Command(command.text, text.replace(old, new, 1).splitlines(), command.line)
    try:
        check_output(wrong, printed, Versions(dict(versions.real)))
    except AssertionError:
        return True
    return False


def test_a_wrong_count_or_line_in_a_text_example_fails(sessions):
    command, printed, versions = _transcript(sessions, "hashrec store diff")
    count = int(re.search(r": (\d+) change\(s\)", command.expected[0]).group(1))
    assert _fails(command, printed, versions, f"{count} change(s)", f"{count - 2} change(s)")
    assert _fails(command, printed, versions, "config.epochs", "config.epoch")
    first = next(line for line in command.expected if line.startswith("  files."))
    removed = Command(command.text, [line for line in command.expected if line != first], command.line)
    with pytest.raises(AssertionError):
        check_output(removed, printed, Versions(dict(versions.real)))


def test_a_wrong_key_type_or_flag_in_a_json_example_fails(sessions):
    command, printed, versions = _transcript(sessions, "curl -s -X POST localhost:8000/v1/recommend ")
    assert not _fails(command, printed, versions, '"cached":false', '"cached":false')
    assert _fails(command, printed, versions, '"cached":false', '"cached":true')
    assert _fails(command, printed, versions, '"model_version"', '"version"')
    assert _fails(command, printed, versions, '"fallback":false,', "")
    assert _fails(command, printed, versions, '"score":', '"score":"x","s":')


def test_a_version_shown_for_two_different_versions_fails():
    versions = Versions()
    versions.bind("v20261122-221030-631f4d", "v20270101-000000-aaaaaa")
    with pytest.raises(AssertionError, match="stood for"):
        versions.bind("v20261122-221030-631f4d", "v20270101-000000-bbbbbb")
    with pytest.raises(AssertionError, match="is shown as"):
        versions.bind("v20261122-221037-26f1ca", "v20270101-000000-aaaaaa")


def test_the_normalizer_keeps_integers_and_drops_volatile_parts():
    assert text_matches(
        "* v20261122-221037-26f1ca  2026-11-22 22:10:37  recall@20=0.1670  150.0 KiB  by root@vm:263",
        "* v20270101-000000-aaaaaa  2027-01-01 00:00:00   recall@20=0.2000  151.5 KiB  by u@h:9",
    )
    assert not text_matches("ok  v20261122-221037-26f1ca  11 files", "ok  v20270101-000000-aaaaaa  12 files")
    assert not text_matches("* v20261122-221037-26f1ca", "  v20261122-221037-26f1ca")
    assert text_matches("error: item_id 'i0042' ...", "error: item_id 'i117' is not known")
