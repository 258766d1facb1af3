"""Sessions derived from content (no carrier): one per conversation, never shared by two
callers, whatever fixed opening the client repeats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from coderouter.dialects.registry import DIALECTS
from coderouter.sessions import Conversations, session_key
from tests.conftest import ALICE, StartGateway, base_config
from tests.fakes import FakeUpstream

CHAT, MESSAGES = DIALECTS["chat"], DIALECTS["messages"]

CAROL = "sk-cr-carol-0123456789abcdefghijklmnop"

#: What aider sends before the user's words on every turn of every conversation.
_SYSTEM = {"role": "system", "content": "Act as an expert software developer."}
_EXAMPLE = [
    {"role": "user", "content": "Change the greeting to be more casual"},
    {"role": "assistant", "content": "Ok, I will:\n\n1. Switch the greeting text."},
    {"role": "user", "content": "I switched to a new code base. Please don't consider the "
                                "above files or try to edit them any longer."},
    {"role": "assistant", "content": "Ok."},
]
_OK = {"role": "assistant", "content": "Ok, any changes I propose will be to those files."}


def _files(version: int) -> dict[str, str]:
    return {"role": "user",
            "content": f"I have *added these files to the chat*\n\napp.py v{version}"}


def aider_turns(first: str, second: str) -> list[list[dict[str, str]]]:
    """Two turns of one aider conversation: its history sits between the fixed opening and
    the chat files, which change as aider edits them."""
    one = [_SYSTEM, *_EXAMPLE, _files(1), _OK, {"role": "user", "content": first}]
    two = [_SYSTEM, *_EXAMPLE, {"role": "user", "content": first},
           {"role": "assistant", "content": f"Done: {first}"}, _files(2), _OK,
           {"role": "user", "content": second}]
    return [one, two]


async def test_aider_conversations_get_a_session_each_per_token(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Two aider conversations of one caller and one of another: three sessions, each the
    same on both of its turns."""
    config = base_config(upstream.url, tmp_path)
    config["tokens"].append({"name": "carol", "key": CAROL})
    gateway = await start_gateway(config)
    conversations = [(ALICE, aider_turns("add a --verbose flag", "now document it")),
                     (ALICE, aider_turns("rename main to run", "and fix the tests")),
                     (CAROL, aider_turns("add a --verbose flag", "now document it"))]
    async with aiohttp.ClientSession() as http:
        for turn in (0, 1):
            for key, turns in conversations:
                body: dict[str, Any] = {"model": "smart", "messages": turns[turn]}
                async with http.post(gateway.url + "/v1/chat/completions", json=body,
                                     headers={"Authorization": f"Bearer {key}",
                                              "User-Agent": "aider/0.86.1"}) as resp:
                    assert resp.status == 200, await resp.text()
    rows = await gateway.rows()
    sessions = [row["session"] for row in rows]
    assert [row["token"] for row in rows] == ["alice", "alice", "carol"] * 2
    assert sessions[:3] == sessions[3:]
    assert len(set(sessions)) == 3
    assert all(s.startswith("h:") and len(s) == 34 for s in sessions)


def test_a_moved_cache_breakpoint_does_not_start_a_conversation() -> None:
    """Messages callers move cache_control to the newest message each turn."""
    known = Conversations()
    said = {"role": "user", "content": [{"type": "text", "text": "fix it",
                                         "cache_control": {"type": "ephemeral"}}]}
    first = session_key({}, {"model": "m", "messages": [said]}, MESSAGES, "alice", known)
    later = session_key({}, {"model": "m", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "fix it"}]},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": [{"type": "text", "text": "thanks",
                                      "cache_control": {"type": "ephemeral"}}]}]},
        MESSAGES, "alice", known)
    assert first == later


def test_conversations_forget_the_oldest_beyond_their_size() -> None:
    """The memory is bounded: past *size* messages, the oldest conversation is forgotten and
    its next turn starts a new one."""
    known = Conversations(size=2)
    turns = [{"role": "user", "content": f"task {n}"} for n in range(3)]
    keys = [session_key({}, {"model": "m", "messages": [t]}, CHAT, "alice", known)[0]
            for t in turns]
    assert len(set(keys)) == 3
    again = [turns[0], {"role": "assistant", "content": "ok"}, {"role": "user", "content": "go"}]
    assert session_key({}, {"model": "m", "messages": again}, CHAT, "alice", known)[0] != keys[0]
    again[0] = turns[2]
    assert session_key({}, {"model": "m", "messages": again}, CHAT, "alice", known)[0] == keys[2]
