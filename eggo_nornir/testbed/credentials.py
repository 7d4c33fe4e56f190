"""The testbed's SSH key, password and per-machine host keys.

Why generated per testbed: the machines accept root logins, so their credentials must
not be guessable or shared with anything else. The key and the password live in 0600
files in the out dir; the password is never printed or put on a command line (it goes
to `openssl passwd` on stdin), so it cannot leak through logs or `ps`.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from eggo_nornir.testbed.proc import run

KEY_FILE = "id_ed25519"
PASSWORD_FILE = "password"
KNOWN_HOSTS_FILE = "known_hosts"


@dataclass(frozen=True)
class Credentials:
    key_path: Path
    public_key: str
    password_path: Path

    def password(self) -> str:
        return self.password_path.read_text().strip()


def _write_private(path: Path, data: bytes) -> None:
    """Create with 0600 from the start (no window where the file is world-readable)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def new_ed25519(comment: str) -> tuple[bytes, str]:
    """An OpenSSH-format ed25519 private key and its `ssh-ed25519 AAAA... comment` public line."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, f"{public.decode()} {comment}"


def ensure_credentials(out_dir: Path) -> Credentials:
    """Reuse the out dir's key and password if present (colleagues may have them configured), else create."""
    out_dir.mkdir(parents=True, exist_ok=True)
    key_path = out_dir / KEY_FILE
    pub_path = out_dir / (KEY_FILE + ".pub")
    if not key_path.is_file() or not pub_path.is_file():
        private, public = new_ed25519("eggo-nornir-testbed")
        _write_private(key_path, private)
        pub_path.write_text(public + "\n")
    os.chmod(key_path, 0o600)
    password_path = out_dir / PASSWORD_FILE
    if not password_path.is_file() or not password_path.read_text().strip():
        _write_private(password_path, (secrets.token_urlsafe(18) + "\n").encode())
    os.chmod(password_path, 0o600)
    return Credentials(key_path, pub_path.read_text().strip(), password_path)


def hash_password(password: str) -> str:
    """SHA-512 crypt hash for /etc/shadow; the password goes over stdin, never argv."""
    return run(
        ["openssl", "passwd", "-6", "-stdin"], step="credentials: hash password", input_text=password + "\n"
    ).stdout.strip()


def set_shadow_hashes(shadow: str, hashes: dict[str, str]) -> str:
    """Return /etc/shadow text with the password field of each user in `hashes` replaced."""
    lines = []
    for line in shadow.splitlines():
        fields = line.split(":")
        if len(fields) >= 2 and fields[0] in hashes:
            fields[1] = hashes[fields[0]]
        lines.append(":".join(fields))
    return "\n".join(lines) + "\n"
