"""Edits of the config file's text that keep its comments, order and layout (`coderouter
token new --append`, `token disable`, `token rotate`). Pure: text in, text out.

Each edit finds the YAML nodes it changes by their marks in the composed document and splices
the few characters it needs, so everything else in the file stays byte for byte.
"""

from __future__ import annotations

import re

import orjson
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_SPECIAL = frozenset(("true", "false", "yes", "no", "on", "off", "null", "y", "n"))


class EditError(ValueError):
    """The file cannot be edited as asked (not YAML, no such token, an unusual layout)."""


def scalar(value: str) -> str:
    """*value* as a YAML scalar: plain when that reads back as the same string, else quoted."""
    if _PLAIN.fullmatch(value) and value.lower() not in _SPECIAL:
        return value
    return orjson.dumps(value).decode()


def append_token(text: str, fields: list[tuple[str, str]]) -> str:
    """*text* with a token entry of *fields* (key, rendered YAML value) at the end of
    ``tokens:`` (created when absent)."""
    root = _root(text)
    found = _value(root, "tokens")
    if found is None:
        lines = "".join(f"{'  - ' if i == 0 else '    '}{k}: {v}\n"
                        for i, (k, v) in enumerate(fields))
        return _terminated(text) + "tokens:\n" + lines
    key, tokens = found
    if isinstance(tokens, SequenceNode) and tokens.flow_style:
        close = tokens.end_mark.index - 1
        entry = "{" + ", ".join(f"{k}: {v}" for k, v in fields) + "}"
        return text[:close].rstrip() + (", " if tokens.value else "") + entry + text[close:]
    if isinstance(tokens, ScalarNode) and tokens.value in ("", "~", "null"):
        dash = key.start_mark.column + 2
        text = text[:tokens.start_mark.index] + text[tokens.end_mark.index:]
        at = _line_end(text, key.end_mark.index)
    elif isinstance(tokens, SequenceNode) and tokens.value:
        dash = tokens.start_mark.column
        at = _line_end(text, _last_end(tokens))
    else:
        raise EditError("tokens: is not a list; add the token by hand")
    lines = "".join(f"{' ' * dash}{'- ' if i == 0 else '  '}{k}: {v}\n"
                    for i, (k, v) in enumerate(fields))
    text = _terminated(text) if at >= len(text) else text
    return text[:at] + lines + text[at:]


def set_token_field(text: str, name: str, field: str, value: str,
                    replaces: tuple[str, ...] = ()) -> str:
    """*text* with token *name*'s *field* set to *value* (rendered YAML); a key in *replaces*
    (``key`` for ``key_sha256``) is renamed to *field* and takes the value."""
    token = _token(_root(text), name)
    for key_node, value_node in token.value:
        if isinstance(key_node, ScalarNode) and key_node.value in (field, *replaces):
            start, end = value_node.start_mark.index, value_node.end_mark.index
            text = text[:start] + value + text[end:]
            return (text[:key_node.start_mark.index] + field + text[key_node.end_mark.index:])
    if token.flow_style:
        close = token.end_mark.index - 1
        return text[:close].rstrip() + f", {field}: {value}" + text[close:]
    at = _line_end(text, _last_end(token))
    line = f"{' ' * token.start_mark.column}{field}: {value}\n"
    text = _terminated(text) if at >= len(text) else text
    return text[:at] + line + text[at:]


def _root(text: str) -> MappingNode:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise EditError(f"the file is not valid YAML: {exc}") from None
    if root is None:
        return MappingNode("tag:yaml.org,2002:map", [])
    if not isinstance(root, MappingNode):
        raise EditError("the file is not a YAML mapping")
    return root


def _value(mapping: MappingNode, key: str) -> tuple[Node, Node] | None:
    for key_node, value_node in mapping.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None


def _token(root: MappingNode, name: str) -> MappingNode:
    found = _value(root, "tokens")
    items = found[1].value if found is not None and isinstance(found[1], SequenceNode) else []
    for item in items:
        named = _value(item, "name") if isinstance(item, MappingNode) else None
        if named is not None and isinstance(named[1], ScalarNode) and named[1].value == name:
            assert isinstance(item, MappingNode)
            return item
    raise EditError(f"no token named '{name}' under tokens:")


def _last_end(node: Node) -> int:
    """Where the last value written inside *node* ends: a block collection's own end mark
    lies past the comments that follow it, so its last scalar's end is used instead."""
    while isinstance(node, MappingNode | SequenceNode) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(last, tuple) else last
    return int(node.end_mark.index)


def _line_end(text: str, index: int) -> int:
    """The index just past the line holding *index* (its newline included)."""
    newline = text.find("\n", index)
    return len(text) if newline == -1 else newline + 1


def _terminated(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"
