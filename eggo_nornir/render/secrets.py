"""Cluster secrets that are not certificates: the kubelet bootstrap token and the
encryption-at-rest config.

Why generated once and kept in the state dir (0600): the encryption key is what makes
the Secrets in etcd readable, so regenerating it would lose them all, and the bootstrap
token is written into every worker's bootstrap kubeconfig, so changing it would change
files (and restart kubelets) on every run. An unreadable stored file is therefore an
error, never a reason to generate a new one.

State files (next to `pki/` in the cluster dir):

    bootstrap-token             "<id>.<secret>\\n"
    encryption-config.yaml      the EncryptionConfiguration shipped byte for byte to masters
"""

from __future__ import annotations

import base64
import re
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from eggo_nornir.config.model import Node
from eggo_nornir.errors import EggoError
from eggo_nornir.render import yamltext
from eggo_nornir.render.diagnostics import warn
from eggo_nornir.render.hostfile import HostFile
from eggo_nornir.state import private_dir, write_private

TOKEN_FILE = "bootstrap-token"
ENCRYPTION_FILE = "encryption-config.yaml"
ENCRYPTION_CONFIG_PATH = "/etc/kubernetes/encryption-config.yaml"  # --encryption-provider-config
# the format the apiserver's bootstrap authenticator accepts (k8s.io/cluster-bootstrap)
BOOTSTRAP_TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits
EncryptionProvider = Literal["aescbc", "aesgcm", "secretbox"]
PROVIDERS: tuple[str, ...] = ("aescbc", "aesgcm", "secretbox")


def _random_token_part(length: int) -> str:
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(length))


def encryption_configuration(provider: EncryptionProvider = "aescbc", key: bytes | None = None) -> bytes:
    """An EncryptionConfiguration for Secrets: `provider` with key `key1`, then `identity`.

    The `identity` fallback lets the apiserver still read Secrets written before
    encryption was enabled; new writes always use the first provider. The config's
    `security.encryption-provider` picks it at first generation: secretbox by default, as
    the Kubernetes docs advise over aescbc (padding-oracle prone) and over aesgcm (whose
    key must rotate every 200k writes); switching later is the key-rotation procedure of
    docs/security.md, never a new file.
    """
    if provider not in PROVIDERS:
        raise ValueError(f"unsupported encryption provider {provider!r}")
    key = key if key is not None else secrets.token_bytes(32)
    if len(key) != 32:
        raise ValueError("encryption key must be 32 bytes")
    doc = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [
            {
                "resources": ["secrets"],
                "providers": [
                    {provider: {"keys": [{"name": "key1", "secret": base64.b64encode(key).decode("ascii")}]}},
                    {"identity": {}},
                ],
            }
        ],
    }
    return yamltext.dump(doc, sort_keys=False, default_flow_style=False).encode()


def writing_provider(data: bytes) -> str:
    """The provider new writes use: the first of the Secrets resource's list."""
    doc = yaml.safe_load(data)
    try:
        return str(next(iter(doc["resources"][0]["providers"][0])))
    except (KeyError, IndexError, TypeError, StopIteration):
        return "unknown"


def _check_encryption_config(data: bytes, where: Path) -> None:
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise EggoError(f"{where} is not valid YAML ({exc}); restore it, do not delete it") from None
    ok = (
        isinstance(doc, dict)
        and doc.get("kind") == "EncryptionConfiguration"
        and doc.get("apiVersion") == "apiserver.config.k8s.io/v1"
        and isinstance(doc.get("resources"), list)
        and doc["resources"]
    )
    if not ok:
        raise EggoError(
            f"{where} is not an apiserver.config.k8s.io/v1 EncryptionConfiguration; restore it "
            "(a new key would make every encrypted Secret unreadable)"
        )


@dataclass(frozen=True)
class ClusterSecrets:
    """The bootstrap token and encryption config of one cluster; secret parts stay out of repr."""

    bootstrap_token_id: str
    bootstrap_token_secret: str = field(repr=False)
    encryption_config: bytes = field(repr=False)

    @classmethod
    def ensure(cls, state_dir: Path, *, provider: EncryptionProvider = "secretbox") -> ClusterSecrets:
        """Load the secrets from state_dir, generating each missing one once.

        The token and the encryption config are independent: a lost token is simply
        replaced (workers then get a new bootstrap kubeconfig), but an existing
        encryption config is never touched. `provider` only matters at first generation.
        """
        state_dir = private_dir(Path(state_dir))
        token_path, enc_path = state_dir / TOKEN_FILE, state_dir / ENCRYPTION_FILE

        if token_path.exists():
            token = token_path.read_text(encoding="ascii", errors="replace").strip()
            match = BOOTSTRAP_TOKEN_RE.match(token)
            if not match:
                raise EggoError(f"{token_path} does not hold a bootstrap token (<6 [a-z0-9]>.<16 [a-z0-9]>)")
            token_id, token_secret = match.groups()
        else:
            token_id, token_secret = _random_token_part(6), _random_token_part(16)
            write_private(token_path, f"{token_id}.{token_secret}\n")

        if enc_path.exists():
            enc = enc_path.read_bytes()
            _check_encryption_config(enc, enc_path)
            current = writing_provider(enc)
            if current != provider:
                warn(
                    f"Secrets are encrypted with {current}, not security.encryption-provider {provider}: "
                    "an existing key is never replaced; docs/security.md says how to rotate to a new provider"
                )
        else:
            enc = encryption_configuration(provider)
            write_private(enc_path, enc)
        return cls(token_id, token_secret, enc)

    def bootstrap_token(self) -> str:
        """`<id>.<secret>`, as the kubelet presents it."""
        return f"{self.bootstrap_token_id}.{self.bootstrap_token_secret}"

    def host_files(self, node: Node) -> list[HostFile]:
        """The encryption config on masters (same key on all, or they could not read each
        other's writes); nothing on other nodes. The token reaches workers only inside
        bootstrap-kubelet.conf (see kubeconfig.kubeconfig_files)."""
        if not node.is_master:
            return []
        return [
            HostFile(
                path=ENCRYPTION_CONFIG_PATH,
                content=self.encryption_config,
                mode=0o600,
                restarts=("kube-apiserver",),
                secret=True,
            )
        ]
