"""Cluster secrets: bootstrap token format, EncryptionConfiguration, generated once and kept."""

from __future__ import annotations

import base64
import re
import stat
from pathlib import Path

import pytest
import yaml

from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.errors import EggoError
from eggo_nornir.render.diagnostics import RenderWarning
from eggo_nornir.render.secrets import (
    ENCRYPTION_CONFIG_PATH,
    ClusterSecrets,
    encryption_configuration,
    writing_provider,
)

TOKEN_RE = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")


def test_bootstrap_token_format(state_dir: Path) -> None:
    sec = ClusterSecrets.ensure(state_dir)
    assert TOKEN_RE.match(sec.bootstrap_token())
    assert sec.bootstrap_token() == f"{sec.bootstrap_token_id}.{sec.bootstrap_token_secret}"
    assert len(sec.bootstrap_token_id) == 6 and len(sec.bootstrap_token_secret) == 16


def test_tokens_are_random(tmp_path: Path) -> None:
    tokens = {ClusterSecrets.ensure(tmp_path / str(i)).bootstrap_token() for i in range(5)}
    assert len(tokens) == 5


def test_encryption_config_shape(state_dir: Path) -> None:
    doc = yaml.safe_load(ClusterSecrets.ensure(state_dir, provider="aescbc").encryption_config)
    assert doc["apiVersion"] == "apiserver.config.k8s.io/v1"
    assert doc["kind"] == "EncryptionConfiguration"
    (entry,) = doc["resources"]
    assert entry["resources"] == ["secrets"]
    first, last = entry["providers"]
    assert last == {"identity": {}}
    (key,) = first["aescbc"]["keys"]
    assert key["name"] == "key1"
    assert len(base64.b64decode(key["secret"], validate=True)) == 32


def test_secretbox_is_the_default_provider(state_dir: Path) -> None:
    doc = yaml.safe_load(ClusterSecrets.ensure(state_dir).encryption_config)
    providers = doc["resources"][0]["providers"]
    assert list(providers[0]) == ["secretbox"] and providers[1] == {"identity": {}}
    assert writing_provider(ClusterSecrets.ensure(state_dir).encryption_config) == "secretbox"
    assert list(yaml.safe_load(encryption_configuration("aesgcm"))["resources"][0]["providers"][0]) == [
        "aesgcm"
    ]
    with pytest.raises(ValueError):
        encryption_configuration("aesxts")  # type: ignore[arg-type]


def test_generated_once_and_kept(state_dir: Path) -> None:
    first = ClusterSecrets.ensure(state_dir, provider="aescbc")
    files = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in state_dir.iterdir()}
    # the provider only matters at creation; another one is warned about, never swapped in
    with pytest.warns(
        RenderWarning, match="encrypted with aescbc, not security.encryption-provider secretbox"
    ):
        second = ClusterSecrets.ensure(state_dir, provider="secretbox")
    assert second == first
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in state_dir.iterdir()} == files


def test_state_files_are_private(state_dir: Path) -> None:
    sec = ClusterSecrets.ensure(state_dir)
    token_file, enc_file = state_dir / "bootstrap-token", state_dir / "encryption-config.yaml"
    for path in (token_file, enc_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert token_file.read_text() == sec.bootstrap_token() + "\n"
    assert enc_file.read_bytes() == sec.encryption_config


def test_lost_token_is_replaced_but_encryption_key_kept(state_dir: Path) -> None:
    first = ClusterSecrets.ensure(state_dir)
    (state_dir / "bootstrap-token").unlink()
    second = ClusterSecrets.ensure(state_dir)
    assert second.encryption_config == first.encryption_config
    assert second.bootstrap_token() != first.bootstrap_token()


@pytest.mark.parametrize("content", [b"not a token\n", b"ABCDEF.0123456789abcdef\n", b"abcdef.0123\n"])
def test_corrupt_token_is_an_error(state_dir: Path, content: bytes) -> None:
    ClusterSecrets.ensure(state_dir)
    (state_dir / "bootstrap-token").write_bytes(content)
    with pytest.raises(EggoError, match="bootstrap token"):
        ClusterSecrets.ensure(state_dir)


@pytest.mark.parametrize("content", [b"{unclosed", b"kind: Pod\n", b""])
def test_corrupt_encryption_config_is_an_error_not_a_new_key(state_dir: Path, content: bytes) -> None:
    ClusterSecrets.ensure(state_dir)
    (state_dir / "encryption-config.yaml").write_bytes(content)
    with pytest.raises(EggoError, match=r"encryption-config\.yaml"):
        ClusterSecrets.ensure(state_dir)
    assert (state_dir / "encryption-config.yaml").read_bytes() == content


def test_repr_hides_secrets(state_dir: Path) -> None:
    sec = ClusterSecrets.ensure(state_dir)
    text = repr(sec)
    assert sec.bootstrap_token_id in text
    assert sec.bootstrap_token_secret not in text
    assert "bootstrap_token_secret" not in text and "encryption_config" not in text
    key = yaml.safe_load(sec.encryption_config)["resources"][0]["providers"][0]["secretbox"]["keys"][0][
        "secret"
    ]
    assert key not in text


def test_host_files_only_on_masters(cluster_config: ClusterConfig, state_dir: Path) -> None:
    sec = ClusterSecrets.ensure(state_dir)
    for node in cluster_config.nodes:
        files = sec.host_files(node)
        if node.is_master:
            (f,) = files
            assert f.path == ENCRYPTION_CONFIG_PATH
            assert f.content == sec.encryption_config
            assert f.mode == 0o600 and f.secret and f.restarts == ("kube-apiserver",)
        else:
            assert files == []
