"""The spec-string grammar: `parse("fixed<8,4>")` and friends.

    spec   := NAME | NAME '<' arg (',' arg)* '>'
    arg    := value | KEY '=' value
    value  := integer | number | true | false | NAME | spec | '[' number (',' number)* ']'

A NAME alone is an alias (`int8`, `fp8_e4m3fn`, `mxfp4`, ...). Each format family registers a
builder for its NAME<...> form; `str(fmt)` prints the canonical spec (the alias where one exists).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from formats.base import Format
from formats.errors import RsimError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT = re.compile(r"[+-]?\d+")


@dataclass
class Args:
    """Parsed arguments of one NAME<...>: positionals in order, then key=value options."""

    spec: str
    positional: list = field(default_factory=list)
    options: dict = field(default_factory=dict)

    def expect_positional(self, names: tuple[str, ...]) -> list:
        if len(self.positional) != len(names):
            raise RsimError(f"format spec {self.spec!r}: expected {len(names)} positional "
                            f"argument(s) <{','.join(names)}>, got {len(self.positional)}")
        return self.positional

    def integer(self, value, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RsimError(f"format spec {self.spec!r}: {what} must be an integer, got {value!r}")
        return value

    def take(self, key: str, default, kinds: tuple[type, ...], valid: str):
        """Remove and return option `key` (or default), checking its type."""
        if key not in self.options:
            return default
        value = self.options.pop(key)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise RsimError(f"format spec {self.spec!r}: {key} must be {valid}, got {value!r}")
        return value

    def done(self, allowed: tuple[str, ...]) -> None:
        if self.options:
            bad = ", ".join(sorted(self.options))
            raise RsimError(f"format spec {self.spec!r}: unknown option(s) {bad}; "
                            f"valid: {', '.join(allowed) or 'none'}")


Builder = Callable[[Args], Format]
_BUILDERS: dict[str, Builder] = {}
_ALIASES: dict[str, Format] = {}


def register(name: str, builder: Builder) -> None:
    """Make NAME<...> parse with `builder`."""
    _BUILDERS[name] = builder


def register_alias(name: str, fmt: Format) -> None:
    """Make NAME parse to `fmt`."""
    _ALIASES[name] = fmt


def alias_of(fmt: Format) -> str | None:
    """The alias naming exactly this format, if there is one."""
    for name, known in _ALIASES.items():
        if known == fmt:
            return name
    return None


def valid_names() -> str:
    return (f"aliases {', '.join(_ALIASES)}; or one of "
            f"{', '.join(n + '<...>' for n in _BUILDERS)}")


def parse(spec: str | Format) -> Format:
    """The format a spec string names (a Format passes through unchanged)."""
    if isinstance(spec, Format):
        return spec
    if not isinstance(spec, str):
        raise RsimError(f"format spec must be a string, got {type(spec).__name__}")
    text = spec.strip()
    value, end = _Parser(text).value(0)
    if end != len(text) or not isinstance(value, Format):
        raise RsimError(f"malformed format spec {spec!r}; valid: {valid_names()}")
    return value


class _Parser:
    """Recursive-descent reader of one spec string."""

    def __init__(self, text: str) -> None:
        self.text = text

    def fail(self, pos: int, what: str):
        raise RsimError(f"malformed format spec {self.text!r} at position {pos}: {what}; "
                        f"valid: {valid_names()}")

    def skip(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos] == " ":
            pos += 1
        return pos

    def value(self, pos: int):
        pos = self.skip(pos)
        if pos < len(self.text) and self.text[pos] == "[":
            return self.number_list(pos + 1)
        name = _NAME.match(self.text, pos)
        if name:
            return self.named(name.group(), name.end())
        number = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?inf|nan").match(
            self.text, pos)
        if not number:
            self.fail(pos, "expected a name or a number")
        token = number.group()
        return (int(token) if _INT.fullmatch(token) else float(token)), number.end()

    def number_list(self, pos: int):
        items = []
        while True:
            item, pos = self.value(pos)
            if not isinstance(item, (int, float)) or isinstance(item, bool):
                self.fail(pos, "lists hold numbers only")
            items.append(item)
            pos = self.skip(pos)
            if pos < len(self.text) and self.text[pos] == ",":
                pos += 1
                continue
            if pos < len(self.text) and self.text[pos] == "]":
                return tuple(items), pos + 1
            self.fail(pos, "expected ',' or ']'")

    def named(self, name: str, pos: int):
        if name in ("true", "false"):
            return name == "true", pos
        if name in ("inf", "nan"):
            return float(name), pos
        if pos >= len(self.text) or self.text[pos] != "<":
            if name in _ALIASES:
                return _ALIASES[name], pos
            if name in _BUILDERS:
                self.fail(pos, f"{name} needs arguments: {name}<...>")
            return name, pos  # a bare word such as special=fn; builders check it
        if name not in _BUILDERS:
            self.fail(pos, f"unknown format {name!r}")
        args = Args(self.text)
        pos += 1
        while True:
            pos = self.skip(pos)
            key = _NAME.match(self.text, pos)
            if key and self.skip(key.end()) < len(self.text) and \
                    self.text[self.skip(key.end())] == "=":
                value, pos = self.value(self.skip(key.end()) + 1)
                if key.group() in args.options:
                    self.fail(pos, f"option {key.group()} given twice")
                args.options[key.group()] = value
            else:
                if args.options:
                    self.fail(pos, "positional argument after key=value")
                value, pos = self.value(pos)
                args.positional.append(value)
            pos = self.skip(pos)
            if pos < len(self.text) and self.text[pos] == ",":
                pos += 1
                continue
            if pos < len(self.text) and self.text[pos] == ">":
                return _BUILDERS[name](args), pos + 1
            self.fail(pos, "expected ',' or '>'")
