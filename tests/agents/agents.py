"""How to run each real agent CLI once, non-interactively and offline, in a fresh HOME.

An `Agent` turns (base URL, key, model, task, step) into a command line, an environment built
from scratch (nothing of the caller's environment leaks in: no stray API keys or proxies) and
the config files it reads from HOME. Step 0 starts a session; a later step resumes it, so the
agent sends the whole conversation so far (tool calls and results included) again. Where
the CLIs are installed: `install.sh` beside this file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.agents.script import Task

HERE = Path(__file__).resolve().parent
NODE_BIN = HERE / "node_modules" / ".bin"
AIDER = HERE / ".aider" / "bin" / "aider"
#: A preload that fails fetch() to anything but loopback (`offline.cjs`).
OFFLINE = HERE / "offline.cjs"


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]


@dataclass(frozen=True)
class Endpoint:
    """Where an agent is pointed: a base URL in the form the agent wants, and a key."""

    base_url: str
    key: str
    model: str


@dataclass(frozen=True)
class Agent:
    name: str
    dialect: str  # the wire dialect it speaks: messages | responses | chat | gemini
    executable: Path
    prepare: Callable[[Endpoint, Task, Path, int], Launch]
    #: A later step resumes the session (False: the CLI cannot resume one headless).
    resumes: bool = True

    @property
    def installed(self) -> bool:
        return self.executable.exists()


def base_env(home: Path) -> dict[str, str]:
    """A clean environment: only PATH, HOME and the XDG dirs under HOME, no proxies."""
    path = os.pathsep.join([str(NODE_BIN), "/usr/local/bin", "/usr/bin", "/bin"])
    return {
        "PATH": path, "HOME": str(home), "USER": "agent", "LANG": "C.UTF-8", "TERM": "dumb",
        "NO_COLOR": "1", "CI": "true", "TMPDIR": str(home / "tmp"),
        "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CACHE_HOME": str(home / ".cache"), "XDG_STATE_HOME": str(home / ".local/state"),
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    }


def write_json(path: Path, obj: object) -> None:
    """Write a config file once: a resumed session keeps what the agent made of it."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


def claude_code(at: Endpoint, task: Task, home: Path, step: int) -> Launch:
    write_json(home / ".claude.json", {"hasCompletedOnboarding": True,
                                       "bypassPermissionsModeAccepted": True})
    env = {**base_env(home),
           "ANTHROPIC_BASE_URL": at.base_url, "ANTHROPIC_AUTH_TOKEN": at.key,
           "ANTHROPIC_MODEL": at.model, "ANTHROPIC_DEFAULT_OPUS_MODEL": at.model,
           "ANTHROPIC_DEFAULT_SONNET_MODEL": at.model, "ANTHROPIC_DEFAULT_HAIKU_MODEL": at.model,
           "ANTHROPIC_SMALL_FAST_MODEL": at.model, "CLAUDE_CODE_SUBAGENT_MODEL": at.model,
           # the model's window: without it, a gateway's model name gets the notice that
           # Claude Code "doesn't recognize the model" (as the README's recipe says)
           "CLAUDE_CODE_MAX_CONTEXT_TOKENS": "200000",
           # compact at 0.1% of that window (200 tokens): every answer of the fake reports
           # more, so each step's session compacts (once: the summary is the new start)
           "CLAUDE_AUTOCOMPACT_PCT_OVERRIDE": "0.1",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
           "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1",
           "CLAUDE_CONFIG_DIR": str(home / ".claude")}
    argv = [str(NODE_BIN / "claude"), "-p", task.prompt(step), "--permission-mode",
            "acceptEdits", "--max-turns", "5", "--output-format", "text"]
    if step:
        argv.append("--continue")
    return Launch(argv, env)


#: Codex's set-ups: the README's custom provider (HTTP, compacts locally: it is not named
#: OpenAI), the built-in provider pointed at the gateway with ``openai_base_url`` (the Responses
#: WebSocket, remote compaction), and a custom provider named ``OpenAI`` (remote compaction
#: over HTTP). Each compacts its session: the fake's every answer reports more tokens than
#: `CODEX_COMPACT_LIMIT`.
CODEX_SETUPS = ("custom", "builtin", "openai-http")
CODEX_COMPACT_LIMIT = 200


def codex(setup: str) -> Callable[[Endpoint, Task, Path, int], Launch]:
    def prepare(at: Endpoint, task: Task, home: Path, step: int) -> Launch:
        codex_home = home / ".codex"
        codex_home.mkdir(parents=True, exist_ok=True)
        config = codex_home / "config.toml"
        if not config.exists():
            config.write_text(codex_config(setup, at))
        env = {**base_env(home), "CODEX_HOME": str(codex_home), "CODEROUTER_API_KEY": at.key,
               "CODEX_API_KEY": at.key}
        argv = [str(NODE_BIN / "codex"), "exec", "--skip-git-repo-check",
                "--sandbox", "danger-full-access", "-C", task.workdir]
        argv += ["resume", "--last", task.prompt(step)] if step else [task.prompt(step)]
        return Launch(argv, env)
    return prepare


def codex_config(setup: str, at: Endpoint) -> str:
    """Codex's config.toml for *setup* (`CODEX_SETUPS`)."""
    head = (f'model = "{at.model}"\n'
            "check_for_update_on_startup = false\n"
            f"model_auto_compact_token_limit = {CODEX_COMPACT_LIMIT}\n")
    if setup == "builtin":
        return head + f'openai_base_url = "{at.base_url}"\n[analytics]\nenabled = false\n'
    name = "OpenAI" if setup == "openai-http" else "gateway"
    return (head + 'model_provider = "gateway"\n'
            "[analytics]\nenabled = false\n"
            "[model_providers.gateway]\n"
            f'name = "{name}"\n'
            f'base_url = "{at.base_url}"\n'
            'env_key = "CODEROUTER_API_KEY"\n'
            'wire_api = "responses"\n'
            "request_max_retries = 1\n"
            "stream_max_retries = 1\n"
            "supports_websockets = false\n")


def gemini_cli(at: Endpoint, task: Task, home: Path, step: int) -> Launch:
    write_json(home / ".gemini" / "settings.json", {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
        "model": {"compressionThreshold": 0.0001},
        "modelConfigs": {"customAliases": {
            "chat-compression-default": {"modelConfig": {"model": at.model}}}}})
    env = {**base_env(home), "GEMINI_API_KEY": at.key, "GOOGLE_GEMINI_BASE_URL": at.base_url,
           "GEMINI_CLI_TRUST_WORKSPACE": "true", "GEMINI_TELEMETRY_ENABLED": "false"}
    argv = [str(NODE_BIN / "gemini"), "-p", task.prompt(step), "-m", at.model,
            "--approval-mode", "yolo", "-o", "text"]
    if step:
        argv += ["--resume", "latest"]
    return Launch(argv, env)


def opencode(at: Endpoint, task: Task, home: Path, step: int) -> Launch:
    write_json(home / ".config" / "opencode" / "opencode.json", {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False, "share": "disabled",
        "model": f"gateway/{at.model}", "small_model": f"gateway/{at.model}",
        "permission": {"edit": "allow", "bash": "allow"},
        "provider": {"gateway": {
            "npm": "@ai-sdk/openai-compatible", "name": "gateway",
            "options": {"baseURL": at.base_url, "apiKey": at.key},
            "models": {at.model: {"name": at.model, "tool_call": True}}}}})
    env = {**base_env(home), "OPENCODE_DISABLE_MODELS_FETCH": "true",
           "OPENCODE_DISABLE_AUTOUPDATE": "true", "OPENCODE_DISABLE_LSP_DOWNLOAD": "true",
           "OPENCODE_DISABLE_DEFAULT_PLUGINS": "true"}
    argv = [str(NODE_BIN / "opencode"), "run", "-m", f"gateway/{at.model}", task.prompt(step)]
    if step:
        argv.append("--continue")
    return Launch(argv, env)


def qwen_code(at: Endpoint, task: Task, home: Path, step: int) -> Launch:
    write_json(home / ".qwen" / "settings.json", {
        "security": {"auth": {"selectedType": "openai"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
        "context": {"autoCompactThreshold": 0.001}})
    env = {**base_env(home), "OPENAI_API_KEY": at.key, "OPENAI_BASE_URL": at.base_url,
           "OPENAI_MODEL": at.model}
    argv = [str(NODE_BIN / "qwen"), "-m", at.model, "--auth-type", "openai",
            "--approval-mode", "yolo", task.prompt(step)]
    if step:
        argv.append("--continue")
    return Launch(argv, env)


def aider(at: Endpoint, task: Task, home: Path, step: int) -> Launch:
    env = {**base_env(home), "OPENAI_API_KEY": at.key, "OPENAI_API_BASE": at.base_url,
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", "AIDER_CHECK_UPDATE": "false",
           "AIDER_ANALYTICS": "false"}
    argv = [str(AIDER), "--model", f"openai/{at.model}", "--edit-format", "whole",
            "--no-git", "--yes-always", "--no-check-update", "--analytics-disable",
            "--no-show-model-warnings", "--no-pretty", "--no-fancy-input",
            "--map-tokens", "0", "--message", task.prompt(step), task.steps[step].filename]
    if step:
        argv.insert(-3, "--restore-chat-history")
    return Launch(argv, env)


#: pi's ``api`` for each dialect: it speaks all four.
PI_APIS = {"chat": "openai-completions", "responses": "openai-responses",
           "messages": "anthropic-messages", "gemini": "google-generative-ai"}


def pi(dialect: str) -> Callable[[Endpoint, Task, Path, int], Launch]:
    """pi (@mariozechner/pi-coding-agent) with a ``models.json`` provider speaking *dialect*."""
    def prepare(at: Endpoint, task: Task, home: Path, step: int) -> Launch:
        agent_dir = home / ".pi" / "agent"
        base_url = at.base_url + ("/v1beta" if dialect == "gemini" else "")
        write_json(agent_dir / "models.json", {"providers": {"gateway": {
            "baseUrl": base_url, "api": PI_APIS[dialect], "apiKey": "CODEROUTER_API_KEY",
            "models": [{"id": at.model, "name": at.model, "input": ["text"]}]}}})
        write_json(agent_dir / "settings.json", {
            "quietStartup": True, "enableInstallTelemetry": False,
            "defaultProvider": "gateway", "defaultModel": at.model})
        env = {**base_env(home), "CODEROUTER_API_KEY": at.key, "PI_OFFLINE": "1",
               "PI_SKIP_VERSION_CHECK": "1", "PI_TELEMETRY": "0",
               "PI_CODING_AGENT_DIR": str(agent_dir)}
        argv = [str(NODE_BIN / "pi"), "-p", "--provider", "gateway", "--model", at.model,
                "--no-extensions", "--no-skills", "--no-prompt-templates", "--no-themes"]
        if step:
            argv.append("--continue")
        return Launch([*argv, task.prompt(step)], env)
    return prepare


#: Continue's model ``provider`` and the path its ``apiBase`` ends with, for each dialect.
CONTINUE_PROVIDERS = {"chat": ("openai", "/"), "messages": ("anthropic", "/v1/"),
                      "gemini": ("gemini", "/v1beta/")}


def continue_cli(dialect: str) -> Callable[[Endpoint, Task, Path, int], Launch]:
    """Continue CLI (`cn`, @continuedev/cli) with a local config whose one model speaks
    *dialect*."""
    def prepare(at: Endpoint, task: Task, home: Path, step: int) -> Launch:
        provider, suffix = CONTINUE_PROVIDERS[dialect]
        config = home / ".continue" / "config.yaml"
        write_json(config, {  # JSON is YAML
            "name": "gateway", "version": "1.0.0", "schema": "v1",
            "models": [{"name": "gateway", "provider": provider, "model": at.model,
                        "apiBase": at.base_url.rstrip("/") + suffix, "apiKey": at.key,
                        "roles": ["chat", "edit", "apply"], "capabilities": ["tool_use"]}]})
        env = {**base_env(home), "CONTINUE_GLOBAL_DIR": str(home / ".continue"),
               "CONTINUE_CLI_ENABLE_TELEMETRY": "0", "CONTINUE_METRICS_ENABLED": "0",
               # its version check (api.continue.dev at start; no setting turns it off)
               "NODE_OPTIONS": f"--require {OFFLINE}", "CONTINUE_API_BASE": "http://127.0.0.1:9/"}
        if dialect == "gemini":  # its Gemini client (google-genai) reads the base URL here
            env["GOOGLE_GEMINI_BASE_URL"] = at.base_url
        argv = [str(NODE_BIN / "cn"), "-p", "--auto", "--config", str(config)]
        if step:
            argv.append("--resume")
        return Launch([*argv, task.prompt(step)], env)
    return prepare


#: The AI SDK provider package Kilo Code (an opencode fork) loads for each dialect, and the path
#: its ``baseURL`` ends with.
KILO_PROVIDERS = {"chat": ("@ai-sdk/openai-compatible", ""), "responses": ("@ai-sdk/openai", ""),
                  "messages": ("@ai-sdk/anthropic", "/v1"), "gemini": ("@ai-sdk/google", "/v1beta")}


def kilo(dialect: str) -> Callable[[Endpoint, Task, Path, int], Launch]:
    """Kilo Code CLI (@kilocode/cli) with a ``gateway`` provider speaking *dialect*; no daemon."""
    def prepare(at: Endpoint, task: Task, home: Path, step: int) -> Launch:
        package, suffix = KILO_PROVIDERS[dialect]
        write_json(home / ".config" / "kilo" / "kilo.json", {
            "$schema": "https://app.kilo.ai/config.json",
            "autoupdate": False, "share": "disabled",
            "model": f"gateway/{at.model}", "small_model": f"gateway/{at.model}",
            "permission": {"edit": "allow", "bash": "allow"},
            "enabled_providers": ["gateway"],  # no model lists fetched from Kilo's own
            "provider": {"gateway": {
                "npm": package, "name": "gateway",
                "options": {"baseURL": at.base_url + suffix, "apiKey": at.key},
                "models": {at.model: {"name": at.model, "tool_call": True}}}}})
        env = {**base_env(home), "KILO_NO_DAEMON": "1", "KILO_DISABLE_AUTOUPDATE": "true",
               "KILO_DISABLE_MODELS_FETCH": "true", "KILO_DISABLE_LSP_DOWNLOAD": "true",
               "KILO_DISABLE_DEFAULT_PLUGINS": "true", "KILO_DISABLE_SHARE": "true",
               "KILO_DISABLE_SESSION_INGEST": "true", "KILO_DISABLE_PRESENCE": "true",
               "KILO_DISABLE_CODEBASE_INDEXING": "true", "KILO_DISABLE_CLAUDE_CODE": "true",
               "KILO_TELEMETRY_LEVEL": "off"}
        argv = [str(NODE_BIN / "kilo"), "run", "-m", f"gateway/{at.model}", task.prompt(step)]
        if step:
            argv.append("--continue")
        return Launch(argv, env)
    return prepare


#: Cline's provider id for each dialect.
CLINE_PROVIDERS = {"chat": "openai-compatible", "responses": "openai-native",
                   "messages": "anthropic", "gemini": "gemini"}


def cline(dialect: str) -> Callable[[Endpoint, Task, Path, int], Launch]:
    """Cline CLI (`cline`) with its provider for *dialect* set in its settings (as
    ``cline auth --provider … --baseurl …`` writes them). No hub daemon: a one-shot run
    (``--yolo``) runs in the process. Cline 3.0 resumes a session (``--id``) only in its
    TUI, so a later step is a new session."""
    def prepare(at: Endpoint, task: Task, home: Path, step: int) -> Launch:
        provider = CLINE_PROVIDERS[dialect]
        data = home / ".cline" / "data"
        write_json(data / "settings" / "providers.json", {
            "version": 1, "lastUsedProvider": provider, "modes": {},
            "providers": {provider: {"settings": {
                "provider": provider, "apiKey": at.key, "model": at.model,
                "baseUrl": at.base_url + ("/v1" if dialect == "messages" else "")},
                "updatedAt": "2026-01-01T00:00:00.000Z",
                "tokenSource": "manual"}}})
        env = {**base_env(home), "CLINE_DATA_DIR": str(data), "CLINE_LOG_ENABLED": "0",
               "DO_NOT_TRACK": "1", "DISABLE_TELEMETRY": "1", "OTEL_SDK_DISABLED": "true"}
        return Launch([str(NODE_BIN / "cline"), "--yolo", task.prompt(step)], env)
    return prepare


AGENTS = {agent.name: agent for agent in (
    Agent("claude-code", "messages", NODE_BIN / "claude", claude_code),
    *(Agent("codex" if setup == "custom" else f"codex-{setup}", "responses",
            NODE_BIN / "codex", codex(setup)) for setup in CODEX_SETUPS),
    Agent("gemini-cli", "gemini", NODE_BIN / "gemini", gemini_cli),
    Agent("opencode", "chat", NODE_BIN / "opencode", opencode),
    Agent("qwen-code", "chat", NODE_BIN / "qwen", qwen_code),
    Agent("aider", "chat", AIDER, aider),
    *(Agent(f"pi-{dialect}", dialect, NODE_BIN / "pi", pi(dialect)) for dialect in PI_APIS),
    *(Agent(f"continue-{dialect}", dialect, NODE_BIN / "cn", continue_cli(dialect))
      for dialect in CONTINUE_PROVIDERS),
    *(Agent(f"kilo-{dialect}", dialect, NODE_BIN / "kilo", kilo(dialect))
      for dialect in KILO_PROVIDERS),
    *(Agent(f"cline-{dialect}", dialect, NODE_BIN / "cline", cline(dialect), resumes=False)
      for dialect in CLINE_PROVIDERS),
)}
