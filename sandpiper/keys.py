"""Key files: the relay's room-token key, and CurveZMQ key pairs made by `sandpiper keygen`.

Key pairs use pyzmq's certificate files (`NAME.key` holds the public key, `NAME.key_secret`
both), the format `zmq.auth` reads, so allow-lists can also be kept with zmq's own tools.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
import zmq
import zmq.auth
import zmq.utils.z85

TOKEN_KEY_FILE = "relay-token.key"  # noqa: S105 - a file name
_TOKEN_KEY_BYTES = 32


class KeyFileError(Exception):
    """A key that cannot be used, with a message for the user."""


def keys_dir() -> Path:
    return platformdirs.user_config_path("sandpiper") / "keys"


def relay_state_dir() -> Path:
    return platformdirs.user_data_path("sandpiper") / "relay"


def token_key(state_dir: Path) -> bytes:
    """The relay's room-token key from `state_dir`, made (mode 0600) on first use: room
    tokens must outlive a restart, so the key must too."""
    path = state_dir / TOKEN_KEY_FILE
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise KeyFileError(f"cannot create {path}: {exc}") from None
    else:
        with os.fdopen(descriptor, "wb") as out:
            out.write(os.urandom(_TOKEN_KEY_BYTES))
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc}") from None
    if len(key) < _TOKEN_KEY_BYTES:
        raise KeyFileError(f"{path} is damaged ({len(key)} bytes); delete it to make a new one")
    return key


def make_key_pair(directory: Path, name: str, *, force: bool = False) -> tuple[bytes, Path, Path]:
    """Write NAME.key and NAME.key_secret (0600) into `directory`: the public key (Z85) and
    the two paths."""
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    if not force and (public.exists() or secret.exists()):
        raise KeyFileError(f"{secret} exists already (use --force to replace it)")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    made_public, made_secret = zmq.auth.create_certificates(str(directory), name)
    os.chmod(made_secret, 0o600)
    key, _ = zmq.auth.load_certificate(made_public)
    return bytes(key), Path(made_public), Path(made_secret)


def load_secret_key(path: Path) -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys from a `.key_secret` file."""
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read a key pair from {path}: {exc}") from None
    if not secret:
        raise KeyFileError(f"{path} holds no secret key (give the .key_secret file)")
    return public, secret


def public_key(value: str) -> bytes:
    """A CurveZMQ public key given as 40 Z85 characters, or as a key file."""
    value = value.strip()
    if len(value) == 40 and not Path(value).exists():
        try:
            zmq.utils.z85.decode(value)
        except (ValueError, KeyError):
            raise KeyFileError(f"{value!r} is not a Z85 key") from None
        return value.encode()
    try:
        public, _ = zmq.auth.load_certificate(value)
    except (OSError, ValueError) as exc:
        message = f"{value!r} is neither a 40-character key nor a key file: {exc}"
        raise KeyFileError(message) from None
    return bytes(public)
