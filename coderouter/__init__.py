"""Code Router: a small, fast, self-hosted OpenAI- and Anthropic-compatible AI gateway."""

__version__ = "0.1.0"
