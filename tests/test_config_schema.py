"""`coderouter config schema`: the JSON Schema editors use agrees with `coderouter check`."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml

from coderouter.config import parse
from coderouter.config.jsonschema import schema
from coderouter.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"
BOGUS = "zzqqxxyy"

#: A config with every mapping of the file present, so a key can be tried at each of them.
FULL: dict[str, Any] = {
    "listen": {"host": "127.0.0.1"}, "database": {"path": "x.sqlite"}, "state": {},
    "admin": {}, "limits": {}, "shutdown": {}, "log": {},
    "channels": [{"name": "c", "type": "mock", "timeout": {},
                  "body_rules": [{"drop": "context_management"}]}],
    "model_groups": [{
        "name": "g", "targets": [{"channel": "c", "model": "m"}], "retry": {},
        "price": {"input": 1, "output": 2},
        "rules": [{"name": "r", "when": {"tools": True},
                   "targets": [{"channel": "c", "model": "m"}]}]}],
    "token_groups": [{"name": "tg", "quota": {"tokens": 1}, "rate_limit": {"rpm": 1}}],
    "tokens": [{"name": "t", "key_sha256": "a" * 64, "quota": {"tokens": 1},
                "rate_limit": {"rpm": 1}}],
}
#: Every mapping of the file, as a path into FULL (an int indexes a list).
MAPPINGS: list[tuple[str | int, ...]] = [
    (), ("listen",), ("database",), ("state",), ("admin",), ("limits",), ("shutdown",),
    ("log",), ("channels", 0), ("channels", 0, "timeout"), ("channels", 0, "body_rules", 0),
    ("model_groups", 0),
    ("model_groups", 0, "targets", 0), ("model_groups", 0, "retry"),
    ("model_groups", 0, "price"), ("model_groups", 0, "rules", 0),
    ("model_groups", 0, "rules", 0, "when"), ("token_groups", 0),
    ("token_groups", 0, "quota"), ("token_groups", 0, "rate_limit"), ("tokens", 0),
    ("tokens", 0, "quota"), ("tokens", 0, "rate_limit"),
]


def validate(config: Any) -> None:
    jsonschema.Draft202012Validator(schema()).validate(config)


def yaml_path(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def node(tree: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def schema_node(path: tuple[str | int, ...]) -> dict[str, Any]:
    """The object schema at *path* (through arrays' items and one-or-a-list quotas)."""
    at = schema()
    for part in path:
        if isinstance(part, int):
            at = at["items"]
        else:
            at = at["properties"][part]
            at = next((a for a in at.get("anyOf", ()) if a.get("type") == "object"), at)
    return at


def accepted_keys(path: tuple[str | int, ...]) -> set[str]:
    """The keys `check` accepts at *path*, as its unknown-key error lists them."""
    config = copy.deepcopy(FULL)
    node(config, path)[BOGUS] = 1
    with pytest.raises(ConfigError) as caught:
        parse(yaml.safe_dump(config), environ={})
    where = yaml_path((*path, BOGUS))
    message = dict(caught.value.problems)[where]
    listed = re.fullmatch(rf"unknown key '{BOGUS}'; expected one of (.*)", message)
    assert listed, message
    return set(listed.group(1).split(", "))


def test_full_config_is_valid_both_ways() -> None:
    """The probe config itself passes `check` and the schema."""
    parse(yaml.safe_dump(FULL), environ={})
    validate(FULL)


@pytest.mark.parametrize("path", MAPPINGS, ids=lambda p: yaml_path(p) or "top")
def test_schema_names_exactly_the_keys_check_accepts(path: tuple[str | int, ...]) -> None:
    """Each mapping of the schema lists exactly the keys the loader accepts there; a key
    added to the loader must be added to coderouter/config/jsonschema.py (and
    docs/configuration.md)."""
    at = schema_node(path)
    assert at["additionalProperties"] is False
    assert set(at["properties"]) == accepted_keys(path), (
        f"{yaml_path(path) or 'top level'}: update coderouter/config/jsonschema.py and "
        "docs/configuration.md")


def test_every_key_is_described() -> None:
    """An editor shows a description for every key."""
    def walk(at: dict[str, Any], where: str) -> None:
        for name, sub in at.get("properties", {}).items():
            assert sub.get("description") or sub.get("type") == "object", f"{where}.{name}"
            walk(sub, f"{where}.{name}")
            for option in (*sub.get("anyOf", ()), sub.get("items") or {}):
                walk(option, f"{where}.{name}")
    walk(schema(), "")


def test_example_config_is_valid() -> None:
    """The shipped example passes the schema, as it passes `check`."""
    validate(yaml.safe_load(EXAMPLE.read_text()))


#: Mistakes `check` refuses that a schema can see too: (where, value).
REFUSED: list[tuple[tuple[str | int, ...], Any]] = [
    (("channels", 0, "type"), "mokc"),
    (("listen", "port"), "8080x"),
    (("listen", "port"), 70000),
    (("limits", "max_body"), "20 megabytes"),
    (("model_groups", 0, "cooldown"), "30 seconds"),
    (("model_groups", 0, "targets", 0, "weight"), 0),
    (("model_groups", 0, "price", "input"), -1),
    (("model_groups", 0, "rules", 0, "when", "background"), False),
    (("token_groups", 0, "quota", "period"), "year"),
    (("tokens", 0, "key_sha256"), "not-hex"),
    (("tokens", 0, "enabled"), "yes"),
    (("log", "format"), "xml"),
    (("state", "on_state_failure"), "sometimes"),
    (("workers",), 0),
    (("secret",), "short"),
    (("channels", 0, "responses"), "sometimes"),
    (("channels", 0, "body_rules", 0, "value"), 1),
    (("channels", 0, "body_rules"), [{"set": "thinking"}]),
    (("channels", 0, "body_rules"), [{"drop": "a", "set": "b", "value": 1}]),
    (("channels", 0, "body_rules"), [{"drop": "tools..strict"}]),
]


@pytest.mark.parametrize(("path", "value"), REFUSED,
                         ids=[f"{yaml_path(p)}={v!r}" for p, v in REFUSED])
def test_schema_refuses_what_check_refuses(path: tuple[str | int, ...], value: Any) -> None:
    config = copy.deepcopy(FULL)
    node(config, path[:-1])[path[-1]] = value
    with pytest.raises(ConfigError):
        parse(yaml.safe_dump(config), environ={})
    with pytest.raises(jsonschema.ValidationError):
        validate(config)


def test_config_schema_command_prints_the_schema() -> None:
    """`coderouter config schema` prints the schema as JSON."""
    done = subprocess.run([sys.executable, "-m", "coderouter", "config", "schema"],
                          capture_output=True, check=True, timeout=60, cwd=ROOT)
    assert orjson.loads(done.stdout) == schema()
