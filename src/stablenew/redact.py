"""Credentials never reach anything StableNew writes or prints.

A secret can sit anywhere a user put it: the `password` field, a `--api-auth user:pass` in the
managed backend's launch command (A1111 prints its arguments at start-up), a `user:pass@` in a
URL, an environment variable such as `HF_TOKEN`. Known secrets are registered once, when the
configuration is read; every writer (event logs, the backend's log and tail, failure artifacts,
`config show`, error messages) passes its text through `text()`, which also masks the patterns
that carry secrets whatever their value.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping

MASK = "***"

# A command-line flag whose value is a credential: --api-auth, --gradio-auth, --auth, --api-key,
# --hf-token, --password, ... (the value follows after "=" or whitespace).
SECRET_FLAG = re.compile(r"^--?[\w-]*(?:auth|token|key|secret|passw|pwd)[\w-]*$", re.IGNORECASE)
_FLAG_IN_TEXT = re.compile(
    r"(--?[\w-]*(?:auth|token|key|secret|passw|pwd)[\w-]*)(=|\s+)(['\"]?)([^\s'\"]+)",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"([a-zA-Z][\w+.-]*://)[^/\s@:]+:[^/\s@]*@")
_AUTH_HEADER = re.compile(r"((?:Basic|Bearer)\s+)[A-Za-z0-9+/=._~-]{6,}")
SECRET_ENV = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|AUTH", re.IGNORECASE)

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()
_short: re.Pattern[str] | None = None


def register(values: Iterable[str | None]) -> None:
    """Remember secret values; from now on they are masked wherever they appear."""
    global _secrets, _short
    with _lock:
        known = set(_secrets)
        for value in values:
            if not value or len(value) < 3:
                continue
            known.add(value)
            password = value.partition(":")[2]  # user:pass: the password alone is secret too
            if len(password) >= 3:
                known.add(password)
        _secrets = tuple(sorted(known, key=len, reverse=True))
        short = [s for s in _secrets if len(s) < 8]
        # A short secret ("pass") is masked as a whole word only, so "passed" stays readable.
        _short = (
            re.compile("|".join(rf"(?<![\w]){re.escape(s)}(?![\w])" for s in short))
            if short
            else None
        )


def register_launch(
    command: Iterable[str] | None,
    env: Mapping[str, str] | None = None,
    urls: Iterable[str | None] = (),
    passwords: Iterable[str | None] = (),
) -> None:
    """The secrets of a backend configuration: flag values, secret-named env values, URLs."""
    found: list[str | None] = list(passwords)
    args = list(command or [])
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if SECRET_FLAG.match(flag):
            if eq:
                found.append(value)
            elif i + 1 < len(args) and not args[i + 1].startswith("-"):
                found.append(args[i + 1])
    for name, value in (env or {}).items():
        if SECRET_ENV.search(name):
            found.append(value)
    for url in urls:
        match = re.search(r"://([^/\s@]+)@", url or "")
        if match and ":" in match.group(1):
            found.append(match.group(1))
    register(found)


def text(value: str) -> str:
    """`value` with every known secret and every credential-shaped pattern masked."""
    if not value:
        return value
    for secret in _secrets:
        if len(secret) >= 8 and secret in value:
            value = value.replace(secret, MASK)
    if _short is not None:
        value = _short.sub(MASK, value)
    if "-" in value:
        value = _FLAG_IN_TEXT.sub(lambda m: f"{m[1]}{m[2]}{m[3]}{MASK}", value)
    if "@" in value:
        value = _URL_USERINFO.sub(rf"\g<1>{MASK}@", value)
    if "Basic" in value or "Bearer" in value:
        value = _AUTH_HEADER.sub(rf"\g<1>{MASK}", value)
    return value


def command(args: Iterable[str]) -> list[str]:
    """A launch command fit to show: the value of every credential flag masked."""
    shown: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next and not arg.startswith("-"):
            shown.append(MASK)
            hide_next = False
            continue
        hide_next = False
        flag, eq, _ = arg.partition("=")
        if SECRET_FLAG.match(flag):
            shown.append(f"{flag}={MASK}" if eq else arg)
            hide_next = not eq
        else:
            shown.append(text(arg))
    return shown


def mapping(values: Mapping[str, str]) -> dict[str, str]:
    """Environment-style settings fit to show: secret-named values masked."""
    return {k: (MASK if SECRET_ENV.search(k) else text(v)) for k, v in values.items()}
