#!/usr/bin/env bash
# Install the real coding-agent CLIs the agent matrix runs (tests/agents), at pinned versions:
# the npm ones from package-lock.json into tests/agents/node_modules, aider into its own venv
# tests/agents/.aider. Any failure exits non-zero: CI must not go on without the agents.
set -euo pipefail
cd "$(dirname "$0")"

# `npm install` with the committed lock, not `npm ci`: the lock lacks the other platforms'
# optional binaries (the registry reachable here does not serve them), which `npm ci` rejects.
npm install --no-save --no-audit --no-fund --loglevel=error
npm ls --depth=0 >/dev/null
python3 -m venv .aider
.aider/bin/pip install --quiet --upgrade pip
.aider/bin/pip install --quiet --no-deps -r requirements-aider.txt
.aider/bin/pip check

for cli in claude codex gemini opencode qwen pi cn cline kilo; do
  printf '%s: %s\n' "$cli" "$(node_modules/.bin/$cli --version 2>&1 | tail -1)"
done
printf 'aider: %s\n' "$(.aider/bin/aider --version 2>&1 | tail -1)"
