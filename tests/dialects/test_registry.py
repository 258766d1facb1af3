"""The one table of dialects: every dialect has its facts, every gateway error renders in
every dialect, and the usage a row bills is the usage a translated caller is told."""

from __future__ import annotations

from typing import Any, get_args

import orjson
import pytest

from coderouter import errors
from coderouter.dialects.dialect import Name
from coderouter.dialects.registry import CODECS, COUNTING, DIALECTS, ENDPOINTS, GEMINI_METHODS

ALL_ERRORS = [cls for cls in vars(errors).values() if isinstance(cls, type)
              and issubclass(cls, errors.GatewayError)]


def test_every_name_has_its_facts_and_every_route_a_dialect() -> None:
    """A name the relay can meet is in the table, under its own name."""
    assert sorted(DIALECTS) == sorted(get_args(Name))
    assert all(d.name == name for name, d in DIALECTS.items())
    assert {d.name for d in (*ENDPOINTS.values(), *GEMINI_METHODS.values())} == set(DIALECTS)
    assert sorted(CODECS) == ["chat", "gemini", "messages", "responses"]
    assert sorted(COUNTING) == ["count_tokens", "gemini_count"]


@pytest.mark.parametrize("name", sorted(DIALECTS))
@pytest.mark.parametrize("error", ALL_ERRORS, ids=lambda cls: cls.__name__)
def test_every_gateway_error_renders_in_every_dialect(
        name: str, error: type[errors.GatewayError]) -> None:
    """Body and stream event, with the message, for every kind (no forgotten table row)."""
    facts = DIALECTS[name]
    exc = error("boom")
    body = orjson.loads(facts.error_body(exc))
    assert "boom" in orjson.dumps(body).decode()
    assert b"boom" in facts.error_event(exc)


ANSWERS: dict[str, dict[str, Any]] = {
    "chat": {"id": "c", "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
             "message": {"role": "assistant", "content": "hi"}}],
             "usage": {"prompt_tokens": 10, "completion_tokens": 5,
                       "prompt_cache_hit_tokens": 6}},
    "messages": {"id": "m", "model": "m", "content": [{"type": "text", "text": "hi"}],
                 "stop_reason": "end_turn",
                 "usage": {"input_tokens": 4, "output_tokens": 5,
                           "cache_read_input_tokens": 6, "cache_creation_input_tokens": 2}},
    "responses": {"id": "r", "model": "m", "status": "completed", "output": [],
                  "usage": {"input_tokens": 10, "output_tokens": 5,
                            "input_tokens_details": {"cached_tokens": 6}}},
    "gemini": {"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]},
                               "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 3,
                                 "thoughtsTokenCount": 2, "cachedContentTokenCount": 6}},
}


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_the_row_reads_usage_as_the_codec_does(name: str) -> None:
    """What a usage row bills for an answer is what the codec tells a translated caller."""
    body = ANSWERS[name]
    told = CODECS[name].decode_response(body).usage
    billed = DIALECTS[name].body_usage(body)
    assert billed == told and billed is not None and billed.cached_tokens == 6
