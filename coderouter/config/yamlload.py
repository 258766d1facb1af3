"""Loading the operator's YAML within bounds. Pure.

`load_yaml` uses libyaml's parser (PyYAML's C extension) when it is installed, else PyYAML's
own.
It composes the document's node graph first and measures it before building anything: a
graph whose aliases expand to more than `MAX_VALUES` values ("billion laughs": a 49 KB file
can stand for millions of route targets), that nests deeper than `MAX_DEPTH`, or that refers
to itself is refused with `YamlTooLarge`. A timestamp that is not a real date
(``2027-02-30``) stays a string, so the config's own checks report it with its path.

`read_document` also returns where each value sits (YAML path to line, for error messages) and
the keys given twice in one mapping, which YAML itself would silently resolve to the last.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

try:
    from yaml._yaml import CParser
    C_LOADER = True
except ImportError:  # PyYAML built without libyaml
    C_LOADER = False

#: Values (scalars, lists, mappings) a document may stand for once its aliases are expanded.
MAX_VALUES = 1_000_000
#: How deep lists and mappings may nest (a real config needs about 8).
MAX_DEPTH = 64


class YamlTooLarge(ValueError):
    """A document over `MAX_VALUES` or `MAX_DEPTH`, or one that contains itself."""


if C_LOADER:
    class _Loader(CParser, Composer, SafeConstructor, Resolver):
        """libyaml's scanner and parser; PyYAML's composer and safe constructor.

        The composer is PyYAML's own so composing returns to Python at every event: a reload
        parsing in a worker thread then hands the GIL back to the event loop every few
        milliseconds, where libyaml's composer would keep it for a whole large document.
        """

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

        check_node = Composer.check_node
        get_node = Composer.get_node
        get_single_node = Composer.get_single_node
else:
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


def _timestamp(loader: _Dates, node: Node) -> Any:
    try:
        return SafeConstructor.construct_yaml_timestamp(loader, node)  # type: ignore[arg-type]
    except ValueError:  # 2027-02-30: left to the config's own date check
        return loader.construct_scalar(node)  # type: ignore[arg-type]


class _Dates(_Loader):
    """The loader, with impossible dates left as strings."""


# the stubs bind a constructor's loader to PyYAML's own classes, not to a composed one
_Dates.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)  # type: ignore[type-var]


@dataclass(frozen=True, slots=True)
class Document:
    """A YAML document's values, where they sit, and its duplicate keys."""

    value: Any
    #: YAML path (``model_groups[1].targets[0].channel``, as the config reports problems) to
    #: its 1-based line.
    lines: Mapping[str, int]
    #: ``(path, message)`` for each key given twice in one mapping.
    duplicates: tuple[tuple[str, str], ...]


def load_yaml(text: str) -> Any:
    """The document in *text* as Python values; `yaml.YAMLError` when it is not YAML,
    `YamlTooLarge` when it is over the bounds."""
    return read_document(text).value


def read_document(text: str) -> Document:
    """*text* as a `Document`; `yaml.YAMLError` when it is not YAML, `YamlTooLarge` when it
    is over the bounds."""
    loader = _Dates(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(None, {}, ())
        measure(node)
        lines, duplicates = _locate(node)
        return Document(loader.construct_document(node), lines, duplicates)
    finally:
        loader.dispose()


def _locate(root: Node) -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """Each path's line under *root*, and the keys given twice. A node reached again through
    an alias is not walked again: its first place is where an error is shown."""
    lines: dict[str, int] = {}
    duplicates: list[tuple[str, str]] = []
    seen: set[int] = set()
    stack: list[tuple[str, Node]] = [("", root)]
    while stack:
        path, node = stack.pop()
        lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in seen:
            continue
        seen.add(id(node))
        children: list[tuple[str, Node]] = []
        if isinstance(node, SequenceNode):
            children = [(f"{path}[{i}]", item) for i, item in enumerate(node.value)]
        elif isinstance(node, MappingNode):
            first: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode) or key_node.value == "<<":
                    continue  # a merge key's values are placed where their anchor is
                key = key_node.value
                child = f"{path}.{key}" if path else key
                line = key_node.start_mark.line + 1
                if key in first:
                    duplicates.append((child, f"given twice (lines {first[key]} and {line}); "
                                              "YAML would keep only the last"))
                else:
                    first[key] = line
                    lines[child] = line
                children.append((child, value_node))
        stack.extend(reversed(children))  # popped in document order
    return lines, tuple(sorted(duplicates))


def measure(root: Node) -> tuple[int, int]:
    """(values once aliases are expanded, nesting depth) of the graph under *root*.

    Walks each node once (an alias is a shared node; its expanded size is counted at every
    use without visiting it again) and without recursion; raises `YamlTooLarge` as soon as a
    bound is passed.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[Node] = [root]
    while stack:
        node = stack[-1]
        key = id(node)
        if key in size:
            stack.pop()
            continue
        children = _children(node)
        if key not in entered:
            entered.add(key)
            for child in children:
                child_key = id(child)
                if child_key in entered and child_key not in size:
                    raise YamlTooLarge("the document contains itself (an alias inside its "
                                       "own anchor)")
                if child_key not in size:
                    stack.append(child)
            continue
        stack.pop()
        total = 1 + sum(size[id(c)] for c in children)
        deepest = 1 + max((depth[id(c)] for c in children), default=0)
        if total > MAX_VALUES:
            raise YamlTooLarge(f"the document stands for more than {MAX_VALUES} values once "
                               "its aliases are expanded")
        if deepest > MAX_DEPTH:
            raise YamlTooLarge(f"the document nests more than {MAX_DEPTH} levels deep")
        size[key], depth[key] = total, deepest
    return size[id(root)], depth[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []
