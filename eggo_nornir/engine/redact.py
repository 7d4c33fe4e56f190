"""Keep a cluster's secrets out of logs, reports and error text.

Why a filter on log records and not just "be careful": secrets reach text through
paths nobody reviews, e.g. Nornir logs every task's traceback at ERROR, and an
exception message may quote a command or a config value. One `Redactor` knows the
secrets of a config (SSH and sudo passwords, the bootstrap token secret, the
encryption key) and masks them in any text; `RedactingFilter` applies it to every
log record (message, args, exception and stack text) before a handler formats it.

Every non-empty secret is masked, however short: a leaked password is worse than an
over-masked log line. The quoted forms a secret takes in `repr()`, JSON and shell
quoting are masked too.

Private keys are masked twice over, because user code on a host (a hook, `set -x`) can
print one, and an error keeps only the tail of its output: every PEM private-key block,
whole or cut (one marker is enough), and any piece of 16 or more base64 characters of a
key the cluster's `pki/` holds, with or without its PEM lines around it.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shlex
import threading
from collections.abc import Iterable
from pathlib import Path

from eggo_nornir.config.model import ClusterConfig

MASK = "***"

# File names written by eggo_nornir.render.secrets (kept in the cluster state dir).
_TOKEN_FILE = "bootstrap-token"
_ENCRYPTION_FILE = "encryption-config.yaml"
_PKI_DIR = "pki"  # eggo_nornir.render.pki: the cluster's keys, `*.key`

# A PEM private key, whole or cut at either end: from its BEGIN line through base64 lines
# (real or escaped newlines) to its END line if present, or base64 lines ending at an END
# line (the head was cut off, as in the tail of a command's stderr).
_NL = r"(?:\r?\n|\\r?\\n)"
_BEGIN, _END = r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----", r"-----END [A-Z0-9 ]*PRIVATE KEY-----"
_PRIVATE_PEM = re.compile(rf"{_BEGIN}(?:[A-Za-z0-9+/=]|{_NL})*(?:{_END})?|(?:[A-Za-z0-9+/=]+{_NL})+{_END}")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{16,}=*")
_KEY_PIECE = 16  # shorter base64 runs are everywhere (paths, hashes) and tell nothing of a key


def _variants(secret: str) -> set[str]:
    """The secret and the escaped spellings it takes inside repr(), JSON and shell strings."""
    out = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], shlex.quote(secret)}
    return {v for v in out if v}


class Redactor:
    """Masks known secrets in text. Thread-safe; secrets never appear in its repr."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._key_material = ""  # base64 bodies of known private keys, one line per PEM line
        self.add(*secrets)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"

    def __len__(self) -> int:
        return len(self._secrets)

    @classmethod
    def from_config(
        cls, cfg: ClusterConfig, *, state_dir: Path | None = None, extra: Iterable[str | None] = ()
    ) -> Redactor:
        """Secrets of `cfg` (global, per-node and bastion passwords, sudo passwords), plus those
        stored in `state_dir` (bootstrap token, encryption key) when given, plus `extra`."""
        found: list[str | None] = [cfg.password, *extra]
        if cfg.bastion:
            found.append(cfg.bastion.password)
        for node in cfg.nodes:
            found += [node.password, node.sudo_password]
        redactor = cls(found)
        if state_dir is not None:
            redactor.add_state_dir(Path(state_dir))
        return redactor

    def add(self, *secrets: str | bytes | None) -> None:
        """Add secrets (None and empty values are ignored)."""
        new: set[str] = set()
        for secret in secrets:
            if isinstance(secret, bytes):
                secret = secret.decode("utf-8", "replace")
            if secret:
                new |= _variants(str(secret))
        if not new:
            return
        with self._lock:
            self._secrets |= new
            # longest first, so a secret that contains another is masked whole
            ordered = sorted(self._secrets, key=lambda s: (-len(s), s))
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def add_private_key(self, pem: str | bytes) -> None:
        """Mask the PEM private key(s) in `pem` anywhere, also in pieces and as the base64 of
        the whole PEM (how a kubeconfig embeds a key as `client-key-data`)."""
        raw = pem.encode() if isinstance(pem, str) else pem
        lines = [
            ln.strip().decode("ascii", "replace")
            for ln in raw.splitlines()
            if ln.strip() and not ln.startswith(b"-----") and b":" not in ln
        ]
        if not lines:
            return
        self.add(base64.b64encode(raw).decode("ascii"))
        with self._lock:
            self._key_material += "\n" + "\n".join(lines)

    def add_state_dir(self, state_dir: Path) -> None:
        """Add the bootstrap token, encryption keys and private keys stored in a cluster state dir.

        Read only: a missing or unreadable file adds nothing (this must never generate
        secrets, and must never fail a run).
        """
        try:
            token = (state_dir / _TOKEN_FILE).read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            token = ""
        if token:
            self.add(token, token.split(".", 1)[-1])
        try:
            import yaml

            doc = yaml.safe_load((state_dir / _ENCRYPTION_FILE).read_bytes())
        except Exception:
            doc = None
        self.add(*_encryption_secrets(doc))
        try:
            keys = sorted((state_dir / _PKI_DIR).rglob("*.key"))
        except OSError:
            keys = []
        for path in keys:
            try:
                self.add_private_key(path.read_bytes())
            except OSError:
                continue

    def redact(self, text: object) -> str:
        """`str(text)` with every known secret and every private key replaced by `***`."""
        value = text if isinstance(text, str) else str(text)
        pattern = self._pattern
        if pattern is not None:
            value = pattern.sub(MASK, value)
        if "PRIVATE KEY-----" in value:
            value = _PRIVATE_PEM.sub(MASK, value)
        material = self._key_material
        if material:
            value = _BASE64_RUN.sub(lambda m: _mask_key_piece(m.group(), material), value)
        return value


def _mask_key_piece(run: str, material: str) -> str:
    """`run` masked when it is a piece of a known key; a run glued to the `n` of an escaped
    newline (`\\nMIIE...` in JSON or a repr) keeps that `n`."""
    for start in (0, 1):
        piece = run[start:].rstrip("=")
        if len(piece) >= _KEY_PIECE and piece in material:
            return run[:start] + MASK
    return run


def _encryption_secrets(doc: object) -> list[str]:
    """Every `secret:` value in an EncryptionConfiguration, wherever it is nested."""
    found: list[str] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "secret" and isinstance(value, str):
                found.append(value)
            else:
                found += _encryption_secrets(value)
    elif isinstance(doc, list):
        for item in doc:
            found += _encryption_secrets(item)
    return found


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in a record and never drops it.

    It renders `msg % args` itself and stores the redacted result (with `args` cleared),
    and pre-formats exception and stack text into `exc_text`/`stack_info`, because
    formatters would otherwise re-render the raw values after the filter ran.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            try:
                message = record.getMessage()
            except Exception:
                message = f"{record.msg!s} {record.args!s}"
            record.msg = self.redactor.redact(message)
            record.args = None
            if record.exc_info:
                text = record.exc_text or logging.Formatter().formatException(record.exc_info)
                record.exc_text = self.redactor.redact(text)
                record.exc_info = None
            elif record.exc_text:
                record.exc_text = self.redactor.redact(record.exc_text)
            if record.stack_info:
                record.stack_info = self.redactor.redact(record.stack_info)
        except Exception:  # a filter must never break logging; drop the record rather than leak
            return False
        return True


def install_filter(
    redactor: Redactor,
    *,
    loggers: Iterable[str] = ("",),
    handlers: Iterable[logging.Handler] = (),
) -> RedactingFilter:
    """Install one `RedactingFilter` on the given loggers, on their current handlers and on
    `handlers`, replacing any `RedactingFilter` installed earlier (so repeated runs in one
    process, e.g. a notebook, do not stack filters). `""` is the root logger.

    Logger filters only see records logged on that very logger, which is why the
    handlers get the filter too: they see records propagated from every child logger.
    """
    flt = RedactingFilter(redactor)
    targets: list[logging.Filterer] = list(handlers)
    for name in loggers:
        logger = logging.getLogger(name or None)
        targets.append(logger)
        targets.extend(logger.handlers)
    for target in targets:
        for old in [f for f in target.filters if isinstance(f, RedactingFilter)]:
            target.removeFilter(old)
        target.addFilter(flt)
    return flt
