"""StreamMeter on its own: complete events only, usage metered, the injected usage hidden."""

from __future__ import annotations

import orjson

from coderouter.errors import RateLimited, ServiceUnavailable, UpstreamError
from coderouter.sse import StreamMeter, Usage, error_event, usage_from_body

CHUNK = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'
USAGE = (b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,'
         b'"total_tokens":9,"prompt_tokens_details":{"cached_tokens":5}}}\n\n')
DONE = b"data: [DONE]\n\n"


def test_partial_events_wait_for_their_end() -> None:
    """Bytes of an unfinished event are held until its blank line arrives."""
    meter = StreamMeter("chat")
    assert meter.feed(CHUNK[:10]) == b""
    assert meter.feed(CHUNK[10:-1]) == b""
    assert meter.feed(CHUNK[-1:] + DONE[:4]) == CHUNK
    assert meter.feed(DONE[4:]) == DONE
    assert meter.done


def test_crlf_framed_events_pass_whole() -> None:
    """Events separated by CRLF blank lines are complete too."""
    meter = StreamMeter("chat")
    framed = CHUNK.replace(b"\n", b"\r\n")
    assert meter.feed(framed[:-2]) == b""
    assert meter.feed(framed[-2:]) == framed


def test_usage_is_read_and_the_injected_chunk_hidden() -> None:
    """With hide_usage the usage-only chunk and the usage:null fields disappear."""
    meter = StreamMeter("chat", hide_usage=True)
    out = meter.feed(CHUNK + USAGE + DONE)
    assert out == CHUNK.replace(b',"usage":null', b"") + DONE
    assert meter.usage == Usage(7, 2, 5)
    assert meter.events == 3


def test_usage_passes_when_the_caller_asked() -> None:
    """Without hide_usage every byte passes unchanged."""
    meter = StreamMeter("chat")
    assert meter.feed(CHUNK + USAGE + DONE) == CHUNK + USAGE + DONE
    assert meter.usage == Usage(7, 2, 5)


def test_anthropic_usage_adds_cache_tokens_to_the_prompt() -> None:
    """message_start gives input and cache tokens, message_delta the output; a cache write
    without its 5-minute/1-hour parts is a 5-minute write (Anthropic's default lifetime)."""
    meter = StreamMeter("messages")
    meter.feed(b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
               b'{"input_tokens":10,"cache_creation_input_tokens":20,'
               b'"cache_read_input_tokens":100,"output_tokens":1}}}\n\n')
    meter.feed(b'event: message_delta\ndata: {"type":"message_delta","delta":{},'
               b'"usage":{"output_tokens":42}}\n\n')
    assert not meter.done
    meter.feed(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert meter.usage == Usage(130, 42, 100, write_5m=20)
    assert meter.done


def test_responses_usage_from_the_completed_event() -> None:
    """Responses streams carry usage in response.completed only."""
    meter = StreamMeter("responses")
    meter.feed(b'event: response.created\ndata: {"response":{"usage":null}}\n\n')
    assert meter.usage is None
    meter.feed(b'event: response.completed\ndata: {"response":{"usage":{"input_tokens":3,'
               b'"output_tokens":4,"input_tokens_details":{"cached_tokens":1}}}}\n\n')
    assert (meter.usage, meter.done) == (Usage(3, 4, 1), True)


def test_last_event_without_blank_line_is_flushed() -> None:
    """An upstream that closes right after its last event still delivers it."""
    meter = StreamMeter("chat")
    assert meter.feed(CHUNK + b"data: [DONE]") == CHUNK
    assert meter.flush() == b"data: [DONE]"
    assert meter.done


def test_usage_from_bodies() -> None:
    """Non-stream bodies: OpenAI, Responses and Anthropic usage shapes."""
    assert usage_from_body("chat", {"usage": {"prompt_tokens": 5, "completion_tokens": 6}}) \
        == Usage(5, 6, 0)
    assert usage_from_body("embeddings", {"usage": {"prompt_tokens": 5, "total_tokens": 5}}) \
        == Usage(5, 0, 0)
    assert usage_from_body("messages", {"usage": {"input_tokens": 1, "output_tokens": 2,
                                                  "cache_read_input_tokens": 3}}) \
        == Usage(4, 2, 3)
    assert usage_from_body("chat", {"usage": None}) is None
    assert usage_from_body("chat", []) is None


def test_error_events_per_dialect() -> None:
    """The event that ends a failed stream, shaped as each API shapes its errors."""
    assert error_event("chat", UpstreamError("boom")) == (
        b'data: {"error":{"message":"boom","type":"upstream_error","code":"upstream_error"}}'
        b"\n\n")
    assert error_event("messages", UpstreamError("boom")) == (
        b'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"boom"}}'
        b"\n\n")
    # typed by the error's kind, as a translated Messages stream's error is
    assert error_event("messages", ServiceUnavailable("bye")) == (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"bye"}}\n\n')
    name, data = error_event("responses", RateLimited("boom")).split(b"\n", 1)
    assert name == b"event: response.failed"
    failed = orjson.loads(data.removeprefix(b"data: "))
    assert failed["type"] == "response.failed"
    assert failed["response"]["error"] == {"code": "rate_limit_exceeded", "message": "boom"}
    # a gateway code Codex has no meaning for becomes server_error (retried)
    assert b'"code":"server_error"' in error_event("responses", UpstreamError("boom"))
