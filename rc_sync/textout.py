"""Plain text for the command line: blocks that fit 80 columns, lines that never break commands.

Rich tables truncate cells (`water…`) and wrap a row over several lines when the terminal is
narrow, and a pipe gets rich's default 80 columns. What people copy (org pks, commands in
backticks) must survive: these helpers produce plain lines, wrapped only between words and never
inside a `command`.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable

WIDTH = 80
_COMMAND = re.compile(r"`[^`]+`")
_GLUE = "\x00"  # stands for a space inside a `command` while wrapping


def wrap(text: str, width: int | None = WIDTH, indent: str = "") -> list[str]:
    """`text` as lines of at most `width` columns (None: one line), commands kept whole."""
    if width is None:
        return [indent + text]
    glued = _COMMAND.sub(lambda m: m.group(0).replace(" ", _GLUE), text)
    lines = textwrap.wrap(
        glued,
        width=width,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_long_words=False,
        break_on_hyphens=False,
    )
    return [line.replace(_GLUE, " ") for line in lines] or [indent]


def block(title: str, fields: Iterable[tuple[str, str]], width: int | None = WIDTH) -> list[str]:
    """A titled block of `label  value` lines (values wrapped under themselves)."""
    pairs = list(fields)
    label_width = max((len(label) for label, _ in pairs), default=0)
    lines = [title]
    for label, value in pairs:
        head = f"  {label:<{label_width}}  "
        if width is None:
            lines.append(head + value)
            continue
        wrapped = textwrap.wrap(
            _COMMAND.sub(lambda m: m.group(0).replace(" ", _GLUE), value),
            width=max(20, width - len(head)),
            break_long_words=False,
            break_on_hyphens=False,
        ) or [""]
        lines.append(head + wrapped[0].replace(_GLUE, " "))
        lines.extend(" " * len(head) + rest.replace(_GLUE, " ") for rest in wrapped[1:])
    return lines
