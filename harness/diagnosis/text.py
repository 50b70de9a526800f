"""Views of a log that let one pattern match however a terminal or a logger mangled the text.

A terminal wraps long lines ("...install a new versi        on from the URL"), rich draws boxes
around tracebacks, loggers prefix every line. Patterns are written for the plain message and
matched against the *squashed* view: every whitespace and box-drawing character removed, so a
phrase matches across wrapped lines. Each squashed character remembers its source line, so a
match still says where in the log it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_DROP = set(" \t\r\n\f\v│╭╮╰╯─┌┐└┘├┤┬┴┼║═❱") | {"\u00a0"}
# a line that announces a warning (python warnings, logging, dynamo's suppressed errors)
_WARNING_LINE = re.compile(r"\bWarning\b|\[WARNING\]|\bWARNING\b|warnings\.warn|\bWARN\b", re.IGNORECASE)
# the line of an exception that ends a traceback: "module.Error: message", "Error: ...", "error: ..."
_EXCEPTION_LINE = re.compile(r"^\W*(?:[\w.]+\.)?\w*(?:Error|Exception|Failed|Missing|Interrupt)\b:?|"
                             r"^\W*(?:ERROR|Error|error)\b[:\s]|\bAborted\b|core dumped")


def squash_pattern(pattern: str) -> str:
    """The same regex for the squashed view: literal spaces and whitespace classes go away."""
    return re.sub(r"\\s[+*?]?| ", "", pattern)


@dataclass
class LogView:
    text: str
    lines: list[str] = field(init=False)
    squashed: str = field(init=False)
    line_of: list[int] = field(init=False)  # squashed index -> line number (0-based)

    def __post_init__(self) -> None:
        self.lines = self.text.splitlines()
        chars: list[str] = []
        owners: list[int] = []
        for number, line in enumerate(self.lines):
            for ch in line:
                if ch not in _DROP:
                    chars.append(ch)
                    owners.append(number)
        self.squashed = "".join(chars)
        self.line_of = owners

    def line_at(self, index: int) -> int:
        if not self.line_of:
            return 0
        return self.line_of[min(index, len(self.line_of) - 1)]

    def is_warning(self, line: int) -> bool:
        """A warning line, or the message line right after a python `...: UserWarning:` header."""
        here = self.lines[line] if line < len(self.lines) else ""
        if _WARNING_LINE.search(here):
            return True
        before = self.lines[line - 1].rstrip() if line > 0 else ""
        return before.endswith("Warning:") or before.endswith("Warning: ")

    def final_exception_line(self) -> int | None:
        """The last line that looks like the exception that ended the process (not a warning)."""
        for number in range(len(self.lines) - 1, -1, -1):
            line = self.lines[number]
            if _EXCEPTION_LINE.search(line) and not self.is_warning(number):
                return number
        return None

    def flat(self, first: int, last: int) -> str:
        """Lines first..last joined with single spaces (what a finding quotes)."""
        return " ".join(" ".join(self.lines[first:last + 1]).split())

    def tail(self, count: int = 12) -> list[tuple[int, str]]:
        kept = [(n, line) for n, line in enumerate(self.lines) if line.strip()]
        return kept[-count:]
