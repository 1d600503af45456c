"""Workflow step inputs templated from the run's inputs and earlier steps' outputs.

A string that is exactly "${path}" takes the referenced JSON value as is; "${path}" inside longer
text is replaced by its text. Paths: inputs.<key>…, steps.<step>.outputs.<key>… (dots descend
into objects, digits index lists).
"""

from __future__ import annotations

import json
import re
from typing import Any

_REF = re.compile(r"\$\{\s*([A-Za-z0-9_.-]+)\s*\}")


class TemplateError(ValueError):
    pass


def lookup(path: str, context: dict[str, Any]) -> Any:
    node: Any = context
    walked: list[str] = []
    for part in path.split("."):
        walked.append(part)
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise TemplateError(f"${{{path}}}: nothing at {'.'.join(walked)}")
    return node


def render(template: Any, context: dict[str, Any]) -> Any:
    if isinstance(template, dict):
        return {k: render(v, context) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, context) for v in template]
    if not isinstance(template, str):
        return template
    whole = _REF.fullmatch(template.strip())
    if whole:
        return lookup(whole.group(1), context)

    def text(match: re.Match[str]) -> str:
        value = lookup(match.group(1), context)
        return value if isinstance(value, str) else json.dumps(value)

    return _REF.sub(text, template)
