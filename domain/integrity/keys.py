"""Ed25519 keys for signing checkpoints (library ``cryptography``).

The private key lives in a PEM (PKCS#8) file readable by its owner only; its path comes from
``--key`` or ``LEDGER_SIGNING_KEY`` (default ``~/.config/chidao-ledger/signing-key.pem``).
The key never enters the database and is never printed or logged; only its public half and
its id (SHA-256 of the 32 raw public-key bytes, hex) are shown or stored.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from domain.integrity.errors import SigningKeyError

KEY_ENV = "LEDGER_SIGNING_KEY"
DEFAULT_KEY_PATH = "~/.config/chidao-ledger/signing-key.pem"


def signing_key_path(path: str | os.PathLike[str] | None = None) -> Path:
    return Path(path or os.environ.get(KEY_ENV) or DEFAULT_KEY_PATH).expanduser()


def raw_public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey | bytes) -> str:
    raw = public_key if isinstance(public_key, bytes) else raw_public_bytes(public_key)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def create_signing_key(path: str | os.PathLike[str] | None = None) -> tuple[Path, Ed25519PublicKey]:
    """Write a new private key (mode 0600, in a directory created 0700); never overwrite."""
    target = signing_key_path(path)
    if target.exists():
        raise SigningKeyError(f"{target} already exists; refusing to overwrite a signing key",
                              field="key")
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise SigningKeyError(f"cannot create {target}: {exc.strerror}", field="key") from None
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return target, key.public_key()


def load_signing_key(path: str | os.PathLike[str] | None = None) -> Ed25519PrivateKey:
    target = signing_key_path(path)
    try:
        info = target.stat()
    except OSError:
        raise SigningKeyError(
            f"no signing key at {target}; create one with `ledger keys create` or set "
            f"{KEY_ENV}", field="key",
        ) from None
    if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(
            f"{target} is readable by others (mode {stat.S_IMODE(info.st_mode):o}); "
            "run chmod 600 on it", field="key",
        )
    try:
        key = serialization.load_pem_private_key(target.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"{target} is not a readable PEM private key ({type(exc).__name__})",
                              field="key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{target} is not an Ed25519 key", field="key")
    return key


def load_public_key(data: bytes, source: str = "public key") -> Ed25519PublicKey:
    """A public key from PEM (SubjectPublicKeyInfo) or from 32 raw bytes."""
    try:
        if len(data) == 32:
            return Ed25519PublicKey.from_public_bytes(data)
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SigningKeyError(f"{source} is not a PEM Ed25519 public key", field="public_key"
                              ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{source} is not an Ed25519 public key", field="public_key")
    return key


def load_public_key_file(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read {path}: {exc.strerror}", field="public_key") from None
    return load_public_key(data, str(path))


def signature_valid(public_key: Ed25519PublicKey | bytes, signature: bytes,
                    message: bytes) -> bool:
    try:
        key = (Ed25519PublicKey.from_public_bytes(public_key)
               if isinstance(public_key, bytes) else public_key)
        key.verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
