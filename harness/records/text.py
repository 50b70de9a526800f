"""Text that came from files (logs, names, reasons, results) made safe for where it goes.

A results file, a log or a name can carry anything: terminal escape codes (which move the cursor, retitle the
window or hide text), rich markup (`[red]`, `[link=...]`), Markdown (a fake `## GO` heading in summary.md, a
table cell broken by `|`) or matplotlib mathtext (`$...$`). Each place text goes has one function here. HTML is
jinja2's autoescape (harness.report.render); plots turn mathtext off (`text.parse_math`) where they are drawn.
"""

from __future__ import annotations

import re

from rich.markup import escape as _rich_escape

# ANSI/VT escape sequences (CSI, OSC, single-character escapes), then any other C0/C1 control but tab and newline.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]|\x9b[0-?]*[ -/]*[@-~]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# What can start markup mid-line (emphasis, code, links, HTML, table cells); a heading or a quote needs a line start,
# and text placed here never starts a line nor holds a newline.
_MARKDOWN = re.compile(r"([\\`*\[\]<|~])")


def plain(text: object, keep_newlines: bool = True) -> str:
    """`text` without escape sequences and control characters (shown as U+FFFD so that nothing hides)."""
    out = _CONTROLS.sub("\ufffd", _ESCAPES.sub("\ufffd", str(text)))
    return out if keep_newlines else out.replace("\r", " ").replace("\n", " ")


def console_text(text: object) -> str:
    """For a rich console with markup on: controls removed, `[` escaped."""
    return _rich_escape(plain(text))


def markdown_text(text: object) -> str:
    """For one line or table cell of Markdown: one line, Markdown's special characters backslash-escaped."""
    return _MARKDOWN.sub(r"\\\1", plain(text, keep_newlines=False))


def plot_text(text: object) -> str:
    """For a matplotlib label, drawn with mathtext off (`NO_MATHTEXT`): one line, no controls."""
    return plain(text, keep_newlines=False)


# rc settings every harness plot is drawn under: a name with `$` is text, never mathtext (which a stray `$\x` makes
# fail when the figure is saved, after the measurement).
NO_MATHTEXT = {"text.parse_math": False}
