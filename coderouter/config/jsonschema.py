"""A JSON Schema (draft 2020-12) of the config file, for editors: `coderouter config schema`.

It names every key with its type, default and a one-line description, and refuses unknown keys,
so an editor completes and checks the file as it is typed. What a schema cannot say (names that
refer to each other, URL schemes, one-of-two keys) is left to `coderouter check`; a test keeps
the keys here equal to the keys the loader accepts (tests/test_config_schema.py).
"""

from __future__ import annotations

from typing import Any

from ..channels import KINDS
from . import PERIODS

Schema = dict[str, Any]

_DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"
_SIZE_PATTERN = r"^\s*\d+(\.\d+)?\s*([Bb]|[KkMmGg][Ii]?[Bb])?\s*$"
_ENV = r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"


def doc(kind: Schema, description: str, default: Any = None, **extra: Any) -> Schema:
    out = {**kind, "description": description, **extra}
    if default is not None:
        out["default"] = default
    return out


STRING: Schema = {"type": "string"}
BOOLEAN: Schema = {"type": "boolean"}
NUMBER: Schema = {"type": "number", "minimum": 0}
STRINGS: Schema = {"type": "array", "items": {"type": "string"}}
DURATION: Schema = {"anyOf": [{"type": "number", "minimum": 0},
                              {"type": "string", "pattern": _DURATION_PATTERN}]}
SIZE: Schema = {"anyOf": [{"type": "integer", "minimum": 0},
                          {"type": "string", "pattern": _SIZE_PATTERN}]}


def integer(minimum: int = 0) -> Schema:
    return {"type": "integer", "minimum": minimum}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (),
        description: str = "") -> Schema:
    """A mapping with exactly *properties*: an unknown key is an error, as in `check`."""
    out: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = list(required)
    if description:
        out["description"] = description
    return out


def array(items: Schema, description: str) -> Schema:
    return {"type": "array", "items": items, "description": description}


TIMEOUTS = obj({
    "connect": doc(DURATION, "TCP and TLS connect", "10s"),
    "first_byte": doc(DURATION, "until the answer's head and a stream's first event", "120s"),
    "idle": doc(DURATION, "the longest gap between stream events", "120s"),
}, description="upstream timeouts")

_FIELD_PATH = r"^[^.]+(\.[^.]+)*$"
BODY_RULE = {**obj({
    "drop": doc({"type": "string", "pattern": _FIELD_PATH},
                "the field to take out of every upstream body (dots go deeper, * is every item)"),
    "set": doc({"type": "string", "pattern": _FIELD_PATH},
               "the field to set in every upstream body (dots go deeper, * is every item)"),
    "value": doc({}, "set: the field's new value (any YAML value)"),
}, description="one rule: drop a field, or set it to value"),
    "oneOf": [{"required": ["drop"]}, {"required": ["set"]}],
    "dependentRequired": {"set": ["value"]},
    "dependentSchemas": {"drop": {"not": {"required": ["value"]}}}}
_RATES: dict[str, Schema] = {
    "input": doc(NUMBER, "USD per million prompt tokens"),
    "output": doc(NUMBER, "USD per million completion tokens"),
    "cached_input": doc(NUMBER, "USD per million cached prompt tokens (default: input)"),
    "cache_write_5m": doc(NUMBER, "USD per million prompt tokens written to a cache for 5 "
                                  "minutes (default: 1.25 x input)"),
    "cache_write_1h": doc(NUMBER, "USD per million prompt tokens written to a cache for an "
                                  "hour (default: 2 x input)"),
}
PRICE = obj({
    **_RATES,
    "tiers": array(obj({"above": doc(integer(), "prompt tokens"), **_RATES},
                       required=("above",),
                       description="a prompt longer than above is billed wholly at these "
                                   "rates (the others as the base)"),
                   "prompt-length tiers (long-context prices)"),
}, required=("input", "output"), description="USD per million tokens")

CHANNEL = obj({
    "name": doc(STRING, "unique; appears in usage rows and metrics"),
    "type": doc({"enum": list(KINDS)}, "the upstream's API"),
    "base_url": doc(STRING, "as the vendor's SDK takes it (openai with /v1, anthropic and "
                          "gemini without)"),
    "keys": doc(STRINGS, "upstream keys, rotated; use ${ENV} references"),
    "headers": doc({"type": "object", "additionalProperties": {"type": "string"}},
                 "extra headers sent upstream"),
    "forward_headers": doc(STRINGS, "caller headers passed beyond the allow-list (names, or "
                                  "prefixes ending in *)"),
    "models": doc(STRINGS, "upstream model names made routable directly"),
    "prices": doc({"type": "object", "additionalProperties": PRICE},
                "upstream model name -> its price on this channel"),
    "timeout": TIMEOUTS,
    "api_version": doc(STRING, "azure: the api-version"),
    "enabled": doc(BOOLEAN, "a disabled channel is never tried", True),
    "betas": doc(STRINGS, "anthropic: the caller anthropic-beta values forwarded (* for "
                        "all; default: those Claude Code needs, README)"),
    "responses": doc({"enum": [True, False, "only"]},
                   "openai/azure: the upstream has the Responses API (only: nothing else)"),
    "body_rules": array(BODY_RULE, "fields dropped from or set in every upstream body, in "
                                   "order (after translation)"),
}, required=("name", "type"))

TARGET = obj({
    "channel": doc(STRING, "a channel's name"),
    "model": doc(STRING, "the upstream's model name (azure: the deployment)"),
    "weight": doc({"type": "number", "exclusiveMinimum": 0}, "share within a priority tier", 1),
    "priority": doc({"type": "integer"}, "lower tiers are tried first", 0),
    "max_context": doc(integer(1), "the longest prompt (tokens) the model takes"),
    "max_output": doc(integer(1), "the longest answer (tokens) the model gives"),
    "price": PRICE,
}, required=("channel", "model"))

RULE = obj({
    "name": doc(STRING, "appears in the row's rule column"),
    "when": obj({
        "prompt_tokens_over": doc(integer(), "the prompt is longer than this many tokens"),
        "reasoning": doc(BOOLEAN, "the request asks for reasoning"),
        "images": doc(BOOLEAN, "the request carries an image"),
        "tools": doc(BOOLEAN, "the request offers tools"),
        "web_search": doc(BOOLEAN, "the request offers a server web-search tool"),
        "clients": doc(STRINGS, "globs of the calling agent's name"),
        "models": doc(STRINGS, "globs of the model name the caller asked for"),
        "background": doc({"const": True}, "Claude Code's background calls (*haiku*)"),
    }, description="every condition given must hold"),
    "targets": array(TARGET, "targets for the requests this rule matches"),
}, required=("when", "targets"))

MODEL_GROUP = obj({
    "name": doc(STRING, "the name callers send as model"),
    "targets": array(TARGET, "tried by priority, weighted within a tier"),
    "retry": obj({"attempts": doc(integer(1), "upstream requests per caller request", 3)}),
    "cooldown": doc(DURATION, "a failing target is skipped this long; 0: never", "30s"),
    "price": PRICE,
    "reasoning": doc(BOOLEAN, "false: translated requests carry no reasoning setting", True),
    "sticky": doc({"anyOf": [BOOLEAN, DURATION]}, "how long a session keeps its target", "1h"),
    "rules": array(RULE, "the first rule that matches names the targets"),
    "aliases": doc(STRINGS, "further names (globs) routed here"),
    "output_reserve": doc(integer(), "output tokens reserved for a request without a maximum",
                        4096),
}, required=("name", "targets"))

QUOTA = obj({
    "period": doc({"enum": list(PERIODS)}, "UTC calendar period", "total"),
    "tokens": doc(integer(), "tokens per period"),
    "requests": doc(integer(), "requests per period"),
    "cost": doc(NUMBER, "USD per period"),
})
QUOTAS: Schema = doc({"anyOf": [QUOTA, {"type": "array", "items": QUOTA}]},
                   "one quota or a list of them")
RATE_LIMIT = obj({
    "rpm": doc(integer(1), "requests per minute"),
    "tpm": doc(integer(1), "tokens per minute"),
    "concurrent": doc(integer(1), "requests in flight"),
})

TOKEN_GROUP = obj({
    "name": doc(STRING, "unique; appears in usage rows"),
    "models": doc(STRINGS, "allow-list of routable names (globs); absent: all"),
    "quota": QUOTAS,
    "rate_limit": RATE_LIMIT,
}, required=("name",))

TOKEN = obj({
    "name": doc(STRING, "unique; appears in usage rows"),
    "key_sha256": doc({"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                    "SHA-256 of the caller's key (coderouter token new)"),
    "key": doc({"type": "string", "minLength": 8}, "the key itself (prefer key_sha256)"),
    "group": doc(STRING, "a token group's name"),
    "models": doc(STRINGS, "allow-list of routable names (globs), within the group's"),
    "quota": QUOTAS,
    "rate_limit": RATE_LIMIT,
    "expires": doc({"type": "string"}, "date or datetime, UTC when no zone is given"),
    "enabled": doc(BOOLEAN, "a disabled token is refused", True),
}, required=("name",))


def schema() -> Schema:
    """The config file's JSON Schema."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Code Router configuration",
        "description": "docs/configuration.md explains every key",
        **obj({
            "listen": obj({
                "host": doc(STRING, "address to bind (restart)", "127.0.0.1"),
                "port": doc({"type": "integer", "minimum": 1, "maximum": 65535}, "(restart)",
                          8080),
                "keepalive": doc(DURATION, "idle keep-alive connections close after this",
                               "75s"),
            }),
            "database": obj({
                "path": doc(STRING, "the SQLite usage file (restart)", "./coderouter.sqlite"),
                "url": doc({"type": "string", "pattern": f"^(postgres(ql)?://|{_ENV})"},
                         "postgresql://…: rows go to PostgreSQL (restart)"),
                "buffer": doc(integer(1), "rows kept in memory while PostgreSQL is down",
                            100000),
                "spool": doc(STRING, "where rows spill while PostgreSQL is down",
                           "./coderouter-spool"),
            }),
            "state": obj({
                "redis": doc({"type": "string", "pattern": f"^(rediss?://|unix://|{_ENV})"},
                           "shared quota and cooldown state (restart)"),
                "on_state_failure": doc({"enum": ["closed", "open"]},
                                      "Redis unreachable: refuse (closed) or count locally",
                                      "closed"),
                "lease": doc(DURATION, "a dead process's reservations are freed after this",
                           "30s"),
                "prefix": doc(STRING, "prefix of every Redis key", "coderouter"),
            }),
            "workers": doc({"anyOf": [integer(1), {"const": "auto"}]},
                         "processes serving the port; more than 1 needs state.redis", 1),
            "admin": obj({"key": doc(STRING, "guards /admin/*, /metrics and /dashboard")}),
            "limits": obj({
                "max_body": doc(SIZE, "request body cap (413)", "20MiB"),
                "max_items": doc(integer(1), "most commas in a request body (array items "
                                 "and object members), checked before parsing (413)", 1000000),
                "body_timeout": doc(DURATION, "a body not all arrived by then: 408", "60s"),
                "sessions": doc(integer(1), "sticky-session pins kept", 100000),
                "max_response": doc(SIZE, "non-stream upstream answer cap (502)", "64MiB"),
                "max_event": doc(SIZE, "one upstream stream event's cap", "16MiB"),
                "write_timeout": doc(DURATION, "a caller reading nothing this long: 499",
                                   "300s"),
                "max_header_bytes": doc(SIZE, "request headers cap (431)", "64KiB"),
                "routes": doc({"type": "object", "additionalProperties": obj({
                    "max_body": doc(SIZE, "request body cap on these paths (413)"),
                    "max_items": doc(integer(1), "most commas in a body on these paths (413)"),
                })}, "request path (glob) -> its own max_body and max_items; first match"),
            }),
            "shutdown": obj({"grace": doc(DURATION, "streams may finish this long after "
                                                  "SIGTERM", "30s")}),
            "log": obj({
                "format": doc({"enum": ["plain", "json"]}, "access log format", "plain"),
                "access": doc(BOOLEAN, "one access log line per request", True),
            }),
            "tracing": obj({
                "endpoint": doc({"type": "string", "pattern": f"^(https?://|{_ENV})"},
                              "OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces; "
                              "tracing is off without it (restart)"),
                "service_name": doc(STRING, "service.name of the spans (restart)",
                                  "coderouter"),
                "sample": doc({"type": "number", "minimum": 0, "maximum": 1},
                            "share of requests traced (restart)", 1.0),
                "headers": doc({"type": "object", "additionalProperties": STRING},
                             "sent with every export, e.g. a collector's auth (restart)"),
            }),
            "capture": obj({
                "sample": doc({"type": "number", "minimum": 0, "maximum": 1},
                            "share of requests whose bodies are kept; 0 is off", 0),
                "max_body": doc(SIZE, "each body is cut at this size", "64KiB"),
                "keep": doc(DURATION, "captured bodies are deleted after this", "24h"),
                "path": doc(STRING, "the SQLite file of captured bodies (restart)",
                          "coderouter-capture.sqlite beside database.path"),
            }),
            "secret": doc({"type": "string", "minLength": 16},
                        "signs and encrypts reasoning envelopes (default: coderouter.secret)"),
            "price_catalog": doc(STRING, "a JSON price catalog written by `coderouter prices "
                                         "update`; prices not given in the file come from it"),
            "channels": array(CHANNEL, "the upstreams"),
            "model_groups": array(MODEL_GROUP, "caller-facing model names"),
            "token_groups": array(TOKEN_GROUP, "shared allow-lists, quotas and rate limits"),
            "tokens": array(TOKEN, "caller keys"),
        }),
    }
