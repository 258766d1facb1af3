"""Envelopes: opaque state the gateway seals for a caller to carry, opened only when we
minted it; and where the secret that signs them comes from."""

from __future__ import annotations

import base64
import os
import stat
import zlib
from pathlib import Path

import pytest

from coderouter.app import envelope_secret
from coderouter.config import parse
from coderouter.dialects.envelope import TAG, Sealer, binding, find

SECRET = b"0123456789abcdef0123456789abcdef"


def test_sealed_values_open_again_and_use_url_safe_characters() -> None:
    sealer = Sealer(SECRET)
    value = {"i": "messages", "d": "EqQBCgIYAhIM+/=" * 40, "t": "thinking\nwith ünïcode"}
    token = sealer.seal(value)
    assert token.startswith(TAG)
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "0123456789-_.")
    assert len(token) < len(value["d"])  # compressed: a long signature costs less
    assert sealer.open(token) == value


@pytest.mark.parametrize("change", ["payload", "mac", "secret", "tag", "truncate"])
def test_only_what_we_sealed_opens(change: str) -> None:
    """A changed payload or MAC, another secret, another tag: not ours, never opened."""
    sealer = Sealer(SECRET)
    token = sealer.seal({"i": "responses", "d": "gAAAA"})
    signed, _, mac = token.rpartition(".")
    forged = {
        "payload": f"{signed[:-2]}AA.{mac}",
        "mac": f"{signed}.{'A' * len(mac)}",
        "secret": Sealer(b"another secret of 32 bytes......").seal({"i": "responses",
                                                                    "d": "gAAAA"}),
        "tag": "crenv2." + token[len(TAG):],
        "truncate": token[:-1],
    }[change]
    assert sealer.open(forged) is None


def test_a_signed_compression_bomb_is_refused() -> None:
    """Even an envelope with a valid MAC inflates to at most 1 MiB."""
    sealer = Sealer(SECRET)
    bomb = zlib.compress(b'"' + b"a" * (2 << 20) + b'"')
    nonce = os.urandom(12)
    sealed = nonce + sealer._cipher(nonce, bomb)
    signed = TAG + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()
    token = f"{signed}.{sealer._mac(signed)}"
    assert sealer.open(token) is None


def test_an_envelope_opens_only_for_its_binding_and_hides_what_it_holds() -> None:
    """Sealed for one channel, key and caller, it opens for none other; its bytes show
    nothing of the value, and two seals of one value differ."""
    sealer = Sealer(SECRET)
    alice = binding("https://api.example/v1", "sk-key-1", "alice")
    value = {"i": "responses", "d": "gAAAA-secret-state", "t": "private thoughts"}
    token = sealer.seal(value, alice)
    assert sealer.open(token, alice) == value
    for other in (binding("https://api.example/v1", "sk-key-1", "bob"),
                  binding("https://api.example/v1", "sk-key-2", "alice"),
                  binding("https://other.example/v1", "sk-key-1", "alice"), ""):
        assert sealer.open(token, other) is None
    assert "sk-key-1" not in alice and len(alice) == 32
    raw = base64.urlsafe_b64decode(token.split(".")[1] + "==")
    assert b"secret-state" not in raw and b"private" not in raw
    assert sealer.seal(value, alice) != token


def test_find_locates_an_envelope_after_an_id() -> None:
    token = Sealer(SECRET).seal({"r": []})
    assert find(token) == 0
    assert find(f"toolu_01.{token}") == len("toolu_01.")
    assert find("toolu_01") == -1
    assert find("call_crenv1.x") == -1


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Sealer(b"short")


def test_the_config_secret_wins_and_is_checked(tmp_path: Path) -> None:
    config = parse(f"database: {{path: {tmp_path}/u.sqlite}}\nsecret: a-long-enough-secret\n")
    assert envelope_secret(config) == b"a-long-enough-secret"
    assert not (tmp_path / "coderouter.secret").exists()
    assert repr(config).count("a-long-enough-secret") == 0
    with pytest.raises(Exception, match="secret: needs at least 16 characters"):
        parse("secret: short\n")


def test_without_a_config_secret_one_is_kept_beside_the_database(tmp_path: Path) -> None:
    """Made once (0600, 32 random bytes), then read on every start: envelopes survive."""
    config = parse(f"database: {{path: {tmp_path}/u.sqlite}}\n")
    first = envelope_secret(config)
    path = tmp_path / "coderouter.secret"
    assert len(first) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert envelope_secret(config) == first
    path.write_text("not hex\n")
    assert len(envelope_secret(config)) == 32  # unusable file: a warning, a process secret
    assert path.read_text() == "not hex\n"
