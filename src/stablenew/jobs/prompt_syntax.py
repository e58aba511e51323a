"""The dynamic-prompts syntax users' wildcard collections are written in, expanded before queueing.

`{a|b|c}` picks one option, `{2$$a|b|c}` two (joined by ", "), `{1-3$$a|b|c}` one to three,
`{2$$ and $$a|b|c}` two joined by " and ", `{0.5::a|2::b}` weighs the options, and
`__folder/name__` picks a line of `folder/name.txt` in the wildcards folder; options and
wildcard lines may nest both. The `dynamicprompts` library does the sampling, from a seeded
`random.Random`, so the same seed gives the same text in every run and every process.

Only the syntax is handed to the library: the text between `{...}` groups and `__name__` tokens
is kept byte for byte. The library would otherwise read `#` as a comment, `$` as a variable and
`%` as a wrapper, and silently change ordinary prompts ("50% gray", "#ff0000").

Braces are always the syntax, as in the A1111 dynamic-prompts extension: a balanced group is
expanded (so a one-option group `{"a": 1}` becomes `"a": 1`), and an unbalanced `{` or `}`
is an error; a literal brace cannot be sent to the backend. Anything else left after
expansion (`__name__` with no file, `[[slot]]`) is an unresolved token: an error by default,
or dropped or kept (with a warning) when the user asks for it.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyparsing
from dynamicprompts.enums import SamplingMethod
from dynamicprompts.sampling_context import SamplingContext
from dynamicprompts.wildcards import WildcardManager
from dynamicprompts.wildcards.values import WildcardValues

from stablenew.errors import InputError, SpecError

Unresolved = Literal["error", "drop", "keep"]
UNRESOLVED_MODES: tuple[Unresolved, ...] = ("error", "drop", "keep")

# `__name__` (letters, digits, `_`, `-`, `/` for folders, `*` for globs), never spanning `__`.
WILDCARD = re.compile(r"__((?:(?!__)[\w\-/*])+)__")
SLOT_TOKEN = re.compile(r"\[\[[^\[\]]*\]\]")
LEFTOVER = re.compile(rf"{SLOT_TOKEN.pattern}|{WILDCARD.pattern}")
# `{2$$a|b}` with no separator of its own (`{2$$ and $$a|b}` has one): the library joins the
# picks with ",", we with ", " as the syntax's documentation shows and prompts are written.
BOUND_WITHOUT_SEPARATOR = re.compile(
    r"(\{\s*[~@]?\s*(?:\d+\s*(?:-\s*\d*)?|-\s*\d+)\s*\$\$)(?![^${}]*\$\$)"
)

# The library logs "No values found for wildcard"; we report those ourselves, with the file,
# row and token, so its messages would only be noise on the user's terminal.
_library_log = logging.getLogger("dynamicprompts")
_library_log.addHandler(logging.NullHandler())
_library_log.propagate = False


def with_default_separator(template: str) -> str:
    """`{2$$a|b}` -> `{2$$, $$a|b}`, so two picks read "a, b"."""
    return BOUND_WITHOUT_SEPARATOR.sub(r"\1, $$", template)


@dataclass(frozen=True)
class Issue:
    """One thing wrong with a prompt; `message` names the token and says what to do."""

    kind: Literal["unresolved", "syntax", "file", "invalid"]
    token: str
    message: str


def read_wildcard_file(path: Path) -> list[str]:
    """A wildcard file as users save it: one value a line, `#` comments and blank lines dropped.

    UTF-8 (a BOM from a Windows editor dropped); any other encoding is an error that says so,
    where the library would silently drop the bytes it cannot read.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
        hint = "it looks like UTF-16" if utf16 else f"byte {exc.start} is not UTF-8"
        raise InputError(f"{path}: not UTF-8 text ({hint}); save it as UTF-8") from exc
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


class WildcardFolder(WildcardManager):
    """The wildcards folder as the library sees it: `folder/name` is `folder/name.txt`.

    Values keep the file's order and its repeated lines (users repeat a line to weigh it), and
    `*` globs match in sorted order, so a seed picks the same value on every machine.
    """

    def __init__(self, folder: Path | None) -> None:
        super().__init__(None)
        self.folder = folder
        self._read: dict[str, WildcardValues] = {}

    def files(self, name: str) -> list[Path]:
        if self.folder is None or ".." in name.split("/") or name.startswith("/"):
            return []
        if "*" in name:
            return sorted(p for p in self.folder.glob(f"{name}.txt") if p.is_file())
        path = self.folder / f"{name}.txt"
        return [path] if path.is_file() else []

    def get_values(self, wildcard: str) -> WildcardValues:
        name = wildcard.strip("_").strip("/")
        if name not in self._read:
            values = [
                with_default_separator(v)
                for path in self.files(name)
                for v in read_wildcard_file(path)
            ]
            self._read[name] = WildcardValues.from_items(values)
        return self._read[name]

    def hint(self, name: str) -> str:
        """What to do about `__name__` that did not resolve."""
        if self.folder is None:
            return "no wildcards folder is set ([packs] wildcards_dir in config.toml)"
        if self.files(name):
            return f"{name}.txt in {self.folder} has no values"
        return f"add {name}.txt to the wildcards folder {self.folder}"


@dataclass
class Expanded:
    """A prompt after expansion: its text, the wildcard values it used, what went wrong."""

    text: str
    values: dict[str, str] = field(default_factory=dict)  # "__weather__" -> "fog"
    issues: list[Issue] = field(default_factory=list)


def _groups(text: str) -> tuple[list[tuple[int, int]], list[Issue]]:
    """The spans of top-level `{...}` groups, or the unbalanced braces."""
    spans: list[tuple[int, int]] = []
    issues: list[Issue] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            if depth == 0:
                issues.append(_brace_issue("}", text, i, "it closes no `{`"))
                continue
            depth -= 1
            if depth == 0:
                spans.append((start, i + 1))
    if depth:
        issues.append(_brace_issue("{", text, start, "it is never closed by `}`"))
    return spans, issues


def _brace_issue(token: str, text: str, at: int, why: str) -> Issue:
    context = text[max(0, at - 20) : at + 20].replace("\n", " ")
    return Issue(
        "syntax",
        token,
        f"unbalanced {token} at character {at + 1} ({context!r}): {why}; braces are the "
        "{a|b} choice syntax, so close the group or remove the brace",
    )


class PromptEngine:
    """Expands the syntax of one prompt at a time, with the wildcards of one folder."""

    def __init__(self, wildcards_dir: Path | None) -> None:
        self.wildcards = WildcardFolder(wildcards_dir)

    def expand(self, text: str, rng: random.Random) -> Expanded:
        """Groups and wildcards picked with `rng`; the rest of the text kept as written."""
        if "{" not in text and "}" not in text and "__" not in text:
            return Expanded(text)
        spans, issues = _groups(text)
        if issues:
            return Expanded(text, issues=issues)
        out = Expanded("")
        pieces: list[str] = []
        at = 0
        for start, end in [*spans, (len(text), len(text))]:
            pieces.append(self._literal(text[at:start], rng, out))
            if start < end:
                pieces.append(self._sample(text[start:end], rng, out))
            at = end
        out.text = "".join(pieces)
        return out

    def _literal(self, text: str, rng: random.Random, out: Expanded) -> str:
        def wildcard(m: re.Match[str]) -> str:
            picked = self._sample(m.group(0), rng, out)
            if picked != m.group(0):
                out.values[m.group(0)] = picked
            return picked

        return WILDCARD.sub(wildcard, text)

    def _sample(self, template: str, rng: random.Random, out: Expanded) -> str:
        context = SamplingContext(
            default_sampling_method=SamplingMethod.RANDOM,
            wildcard_manager=self.wildcards,
            rand=rng,
        )
        try:
            results = iter(context.sample_prompts(with_default_separator(template), 1))
            return str(next(results, "")) if template else ""
        except pyparsing.ParseBaseException as exc:
            out.issues.append(
                Issue("syntax", template, f"cannot read {template!r}: {exc.msg} ({exc.col})")
            )
        except RecursionError:
            out.issues.append(
                Issue("syntax", template, f"{template!r}: wildcards refer to each other in a loop")
            )
        except InputError as exc:
            out.issues.append(Issue("file", template, str(exc)))
        return template


def drop_token(text: str, start: int, end: int) -> str:
    """The text without `text[start:end]` and the separator (", " or a space) it stood behind.

    "a, T, b" -> "a, b"; "a, T" -> "a"; "T, b" -> "b"; "a T b" -> "a b"; line breaks stay.
    """
    left, right = text[:start].rstrip(" \t"), text[end:].lstrip(" \t")
    if left.endswith(",") and (not right or right[0] in ",\n)]}>"):
        left = left[:-1].rstrip(" \t")
    elif (not left or left.endswith("\n")) and right.startswith(","):
        right = right[1:].lstrip(" \t")
    tight = not left or not right or left[-1] in "\n([{" or right[0] in "\n,.;:)]}"
    return left + ("" if tight else " ") + right


@dataclass
class Resolved:
    """Leftover tokens after the unresolved policy: what is left and what to tell the user."""

    text: str
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)


def resolve_leftovers(text: str, policy: Unresolved, hint: Callable[[str], str]) -> Resolved:
    """Apply the policy to every `[[slot]]` or `__name__` left in `text`.

    error: each is an error; drop: each is removed with its separator; keep: left verbatim.
    `hint(token)` says what would resolve it. Drop and keep warn once per token.
    """
    if policy not in UNRESOLVED_MODES:
        raise InputError(f"unresolved: {policy!r} is not one of {', '.join(UNRESOLVED_MODES)}")
    out = Resolved(text)
    matches = list(LEFTOVER.finditer(text))
    for m in matches:
        token = m.group(0)
        if policy == "error":
            out.errors.append(Issue("unresolved", token, f"unresolved {token}: {hint(token)}"))
        else:
            done = "dropped" if policy == "drop" else "kept as written"
            out.warnings.append(
                Issue("unresolved", token, f"unresolved {token} {done} ({hint(token)})")
            )
    if policy == "drop":
        for m in reversed(matches):
            out.text = drop_token(out.text, m.start(), m.end())
    return out


@dataclass(frozen=True)
class Rendered:
    """A direct prompt expanded: the text to send, the wildcard values used, the warnings."""

    text: str
    values: dict[str, str]
    warnings: list[str]


def render_prompt(
    text: str, wildcards_dir: Path | None, seed: int, *, unresolved: Unresolved = "error"
) -> Rendered:
    """A prompt typed on the command line (or in the GUI), expanded once with `seed`.

    Every problem is one SpecError naming each token; a direct prompt has no matrix, so a
    `[[slot]]` in it is unresolved too.
    """
    engine = PromptEngine(wildcards_dir)
    expanded = engine.expand(text, random.Random(seed))
    resolved = resolve_leftovers(expanded.text, unresolved, lambda t: _direct_hint(engine, t))
    errors = [*expanded.issues, *resolved.errors]
    if errors:
        raise SpecError("prompt: " + "; ".join(issue.message for issue in errors))
    warnings = [f"prompt: {w.message}" for w in resolved.warnings]
    return Rendered(resolved.text, expanded.values, warnings)


def expand_prompt(
    text: str, wildcards_dir: Path | None, seed: int, *, unresolved: Unresolved = "error"
) -> str:
    """One variant of `text`: the same seed gives the same prompt, in any run or process."""
    return render_prompt(text, wildcards_dir, seed, unresolved=unresolved).text


def _direct_hint(engine: PromptEngine, token: str) -> str:
    if token.startswith("[["):
        return "a [[slot]] is filled only in a prompt pack with a matrix"
    return engine.wildcards.hint(token.strip("_"))
