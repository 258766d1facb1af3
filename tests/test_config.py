"""The YAML config: every error at once with its path, and the values it builds."""

from __future__ import annotations

import datetime as dt

import pytest

from coderouter.config import Price, hash_key, parse
from coderouter.errors import ConfigError


def problems(text: str, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse(text, env or {})
    return caught.value.problems


def test_every_error_is_reported_with_its_path() -> None:
    """One pass reports all problems, each at its YAML path, with a did-you-mean."""
    found = problems("""
listn: {port: 1}
channels:
  - {name: azure, type: openai, base_url: "https://x/v1", keys: [k]}
  - {name: b, type: opnai}
model_groups:
  - name: smart
    targets: [{channel: azur, model: m, wieght: 2}]
    cooldown: soon
tokens:
  - {name: t, key_sha256: "abc"}
""")
    assert found == [
        ("listn", "unknown key 'listn'; did you mean 'listen'?"),
        ("channels[1].type", "expected one of openai, anthropic, azure, gemini, mock, got 'opnai'"),
        ("model_groups[0].targets[0].wieght", "unknown key 'wieght'; did you mean 'weight'?"),
        ("model_groups[0].targets[0].channel", "no channel named 'azur'; did you mean 'azure'?"),
        ("model_groups[0].cooldown",
         "expected a duration such as 30s, 500ms, 5m, 1h or 7d, got 'soon'"),
        ("tokens[0].key_sha256", "expected 64 hexadecimal characters"),
    ]


def test_environment_variables_are_interpolated() -> None:
    """${NAME} is replaced anywhere in a string; a missing one is named."""
    config = parse("""
channels:
  - {name: o, type: openai, base_url: "https://${HOST}/v1", keys: ["${KEY}", "k2"]}
""", {"HOST": "api.example.com", "KEY": "sk-secret"})
    assert config.channels[0].base_url == "https://api.example.com/v1"
    assert config.channels[0].keys == ("sk-secret", "k2")
    assert problems('admin: {key: "${ADMIN_KEY}"}') == [
        ("admin.key", "environment variable ADMIN_KEY is not set")]


def test_environment_variables_with_a_default() -> None:
    """${NAME:-default}: the default when NAME is unset or empty, as in sh."""
    text = 'admin: {key: "${ADMIN_KEY:-sk-default-admin}"}'
    assert parse(text, {}).admin.key == "sk-default-admin"
    assert parse(text, {"ADMIN_KEY": ""}).admin.key == "sk-default-admin"
    assert parse(text, {"ADMIN_KEY": "sk-from-env"}).admin.key == "sk-from-env"
    assert parse('admin: {key: "${ADMIN_KEY:-}"}', {}).admin.key is None  # empty: no admin


def test_durations_sizes_and_dates() -> None:
    """Durations, sizes and expiry dates take their documented forms."""
    digest = hash_key("sk-cr-0123456789").hex()
    config = parse(f"""
limits: {{max_body: 64KiB}}
shutdown: {{grace: 1m}}
channels:
  - name: o
    type: openai
    base_url: http://x/v1
    keys: [k]
    timeout: {{connect: 500ms, first_byte: 2m, idle: 45}}
tokens:
  - {{name: a, key_sha256: {digest}, expires: 2027-01-01}}
  - {{name: b, key: sk-cr-abcdefgh, expires: "2027-01-01T12:00:00+02:00"}}
""")
    assert config.limits.max_body == 65536
    assert config.shutdown.grace == 60.0
    timeout = config.channels[0].timeout
    assert (timeout.connect, timeout.first_byte, timeout.idle) == (0.5, 120.0, 45.0)
    assert config.tokens[0].expires == dt.datetime(2027, 1, 1, tzinfo=dt.UTC).timestamp()
    assert config.tokens[1].expires == dt.datetime(2027, 1, 1, 10, tzinfo=dt.UTC).timestamp()
    assert config.tokens[0].key_sha256 == bytes.fromhex(digest)
    assert config.warnings == (
        "tokens[1].key: plaintext key; store key_sha256 instead "
        "(`coderouter token new` prints both)",)


def test_routes_from_groups_and_channel_lists() -> None:
    """Channel-listed models are routable; a group of the same name wins; disabled drop out."""
    config = parse("""
channels:
  - {name: a, type: openai, base_url: http://a/v1, keys: [k], models: [gpt-4o, shared]}
  - {name: b, type: openai, base_url: http://b/v1, keys: [k], models: [gpt-4o]}
  - {name: down, type: openai, base_url: http://c/v1, keys: [k], models: [lost], enabled: false}
model_groups:
  - name: shared
    targets: [{channel: b, model: x, priority: 1}, {channel: down, model: y}]
    retry: {attempts: 5}
    cooldown: 10s
    price: {input: 1, output: 2}
""")
    assert sorted(config.routes) == ["gpt-4o", "shared"]
    assert [t.channel.name for t in config.routes["gpt-4o"].targets] == ["a", "b"]
    shared = config.routes["shared"]
    assert [(t.channel.name, t.model, t.priority) for t in shared.targets] == [("b", "x", 1)]
    assert (shared.attempts, shared.cooldown) == (5, 10.0)
    assert shared.price == Price(input=1.0, output=2.0)


def test_channel_requirements_by_type() -> None:
    """openai and anthropic need base_url and keys, azure also api_version, mock neither."""
    found = problems("""
channels:
  - {name: o, type: openai}
  - {name: z, type: azure, base_url: "https://r.openai.azure.com", keys: [k]}
  - {name: m, type: mock}
  - {name: m, type: mock}
""")
    assert found == [
        ("channels[0].base_url", "is required"),
        ("channels[0].keys", "is required"),
        ("channels[1].api_version", "is required"),
        ("channels[3].name", "duplicate channels name 'm'"),
    ]


def test_tokens_need_exactly_one_key_and_unique_keys() -> None:
    """A token has key or key_sha256, not both; two tokens may not share a key."""
    found = problems("""
tokens:
  - {name: a}
  - {name: b, key: sk-cr-samekey1, key_sha256: %s}
  - {name: c, key: sk-cr-samekey1}
  - {name: d, key: sk-cr-samekey1, group: tem}
token_groups:
  - {name: team, quota: {tokens: -1, period: year}}
""" % ("0" * 64))
    assert found == [
        ("token_groups[0].quota.period", "expected one of day, week, month, total, got 'year'"),
        ("token_groups[0].quota.tokens", "must be at least 0, got -1"),
        ("tokens[0]", "needs exactly one of key_sha256 or key"),
        ("tokens[1]", "needs exactly one of key_sha256 or key"),
        ("tokens[3].group", "no token group named 'tem'; did you mean 'team'?"),
        ("tokens[3]", "token 'd' has the same key as 'c'"),
    ]


def test_quota_takes_a_mapping_or_a_list() -> None:
    """quota: one mapping or several; period defaults to total."""
    config = parse("""
token_groups:
  - name: g
    quota: [{tokens: 1_000, period: day}, {cost: 20.5}]
""")
    quotas = config.token_groups[0].quotas
    assert [(q.period, q.tokens, q.cost) for q in quotas] == [("day", 1000, None),
                                                             ("total", None, 20.5)]


def test_yaml_booleans_in_names_get_a_hint() -> None:
    """`name: off` is a YAML boolean: the error says to quote it."""
    assert problems("channels: [{name: off, type: mock}]") == [
        ("channels[0].name", "expected a string, got false "
                             "(YAML reads yes/no/on/off as booleans: quote the value)")]


def test_yaml_syntax_error_names_the_line() -> None:
    """A half-written file is a clear error with its line, not a traceback."""
    [(path, message)] = problems("channels:\n  - {name: a, type: mock\n")
    # libyaml's wording ("did not find expected ',' or '}'") or PyYAML's own
    assert path == ""
    assert message.startswith("invalid YAML: line 3, column 1: ")
    assert "expected ',' or '}'" in message


def test_secrets_stay_out_of_reprs() -> None:
    """Keys never show in a printed config object."""
    config = parse("""
admin: {key: admin-secret}
channels: [{name: o, type: openai, base_url: "http://x/v1", keys: [sk-upstream-secret]}]
tokens: [{name: a, key: sk-cr-tokensecret}]
""")
    text = repr(config)
    for secret in ("admin-secret", "sk-upstream-secret", hash_key("sk-cr-tokensecret").hex()):
        assert secret not in text


def test_model_group_reasoning_flag() -> None:
    """``reasoning`` defaults to true, takes a boolean, and reaches the route."""
    text = """
channels: [{name: o, type: mock}]
model_groups:
  - {name: plain, reasoning: false, targets: [{channel: o, model: m}]}
  - {name: smart, targets: [{channel: o, model: m}]}
"""
    config = parse(text)
    assert (config.routes["plain"].reasoning, config.routes["smart"].reasoning) == (False, True)
    assert problems(text.replace("reasoning: false", "reasoning: no-thanks")) == [
        ("model_groups[0].reasoning", "expected true or false, got str 'no-thanks'")]


def test_model_group_output_reserve() -> None:
    """``output_reserve`` defaults to 4096, takes a whole number from 0, reaches the route."""
    text = """
channels: [{name: o, type: mock, models: [m]}]
model_groups:
  - {name: small, output_reserve: 256, targets: [{channel: o, model: m}]}
  - {name: smart, targets: [{channel: o, model: m}]}
"""
    config = parse(text)
    assert (config.routes["small"].output_reserve, config.routes["smart"].output_reserve,
            config.routes["m"].output_reserve) == (256, 4096, 4096)
    assert problems(text.replace("output_reserve: 256", "output_reserve: -1")) == [
        ("model_groups[0].output_reserve", "must be at least 0, got -1")]


def test_tracing_and_capture_sections() -> None:
    """tracing needs an http(s) OTLP URL and a sample in 0..1; capture's sample is 0..1 too;
    both are off by default, and a collector's headers stay out of reprs."""
    config = parse("channels: [{name: mock, type: mock}]\n", {})
    assert (config.tracing.endpoint, config.capture.sample) == (None, 0.0)
    config = parse("tracing: {endpoint: 'https://otel.example/v1/traces', sample: 0.25,\n"
                   "          headers: {authorization: 'Bearer ${OTEL}'}}\n"
                   "capture: {sample: 0.5, max_body: 1KiB, keep: 2h, path: /tmp/c.sqlite}\n",
                   {"OTEL": "otel-secret-token"})
    assert (config.tracing.endpoint, config.tracing.sample) == (
        "https://otel.example/v1/traces", 0.25)
    assert config.tracing.headers == {"authorization": "Bearer otel-secret-token"}
    assert "otel-secret-token" not in repr(config)
    assert (config.capture.sample, config.capture.max_body, config.capture.keep,
            config.capture.path) == (0.5, 1024, 7200.0, "/tmp/c.sqlite")
    assert problems("tracing: {endpoint: 'ftp://x', sample: 2}\ncapture: {sample: 1.5, "
                    "keep: soon}\n") == [
        ("tracing.endpoint", "must be an http:// or https:// URL (OTLP/HTTP)"),
        ("tracing.sample", "must be between 0 and 1, got 2"),
        ("capture.keep", problems("capture: {keep: soon}\n")[0][1]),
        ("capture.sample", "must be between 0 and 1, got 1.5")]
