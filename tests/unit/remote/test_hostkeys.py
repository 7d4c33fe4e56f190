"""Trust on first use, verification, and the override, with paramiko keys but no network."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import paramiko
import pytest

from eggo_nornir.remote import HostKeyChanged
from eggo_nornir.remote.hostkeys import KnownHosts, TofuPolicy, fingerprint, host_id, prepare_client


@pytest.fixture(scope="module")
def keys() -> tuple[paramiko.PKey, paramiko.PKey]:
    return paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()


def test_host_id_matches_openssh() -> None:
    assert host_id("10.0.0.1", 22) == "10.0.0.1"
    assert host_id("10.0.0.1", 2222) == "[10.0.0.1]:2222"


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
def test_fingerprint_is_what_ssh_keygen_prints(tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    key = paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "k"))
    printed = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True)
    assert fingerprint(key).split()[1] == printed.stdout.split()[1]
    assert fingerprint(key).startswith("ssh-ed25519 SHA256:")


def test_record_lookup_replace_and_file_mode(
    tmp_path: Path, keys: tuple[paramiko.PKey, paramiko.PKey]
) -> None:
    k1, k2 = keys
    path = tmp_path / "state" / "known_hosts"
    store = KnownHosts(path)
    assert store.lookup("h") == {}
    assert store.record("h", k1, replace=False) == {}
    store.record("[other]:2222", k2, replace=False)
    assert store.lookup("h") == {k1.get_name(): k1}
    assert path.stat().st_mode & 0o777 == 0o600
    before = store.record("h", k2, replace=True)
    assert before == {k1.get_name(): k1}
    assert KnownHosts(path).lookup("h") == {k2.get_name(): k2}
    assert KnownHosts(path).lookup("[other]:2222") == {k2.get_name(): k2}
    # plain OpenSSH format, so ssh -o UserKnownHostsFile=... can use it
    assert path.read_text().splitlines()[0].startswith("h ecdsa-sha2-nistp256 AAAA")


def test_parallel_first_use_records_every_host(
    tmp_path: Path, keys: tuple[paramiko.PKey, paramiko.PKey]
) -> None:
    store = KnownHosts(tmp_path / "kh")
    threads = [
        threading.Thread(target=store.record, args=(f"h{i}", keys[0]), kwargs={"replace": False})
        for i in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(KnownHosts(tmp_path / "kh").path.read_text().splitlines()) == 20


def test_prepare_client_preloads_recorded_keys(
    tmp_path: Path, keys: tuple[paramiko.PKey, paramiko.PKey]
) -> None:
    store = KnownHosts(tmp_path / "kh")
    store.record("[10.0.0.1]:2222", keys[0], replace=False)
    client = paramiko.SSHClient()
    prepare_client(client, store, hostname="10.0.0.1", port=2222, label="m1", trust_new=False)
    assert client.get_host_keys().lookup("[10.0.0.1]:2222") is not None
    assert isinstance(client._policy, TofuPolicy)
    trusting = paramiko.SSHClient()
    prepare_client(trusting, store, hostname="10.0.0.1", port=2222, label="m1", trust_new=True)
    assert trusting.get_host_keys().lookup("[10.0.0.1]:2222") is None  # so the policy decides


def test_policy_records_on_first_use(
    tmp_path: Path, keys: tuple[paramiko.PKey, paramiko.PKey], caplog
) -> None:
    store = KnownHosts(tmp_path / "kh")
    client = paramiko.SSHClient()
    caplog.set_level("INFO")
    TofuPolicy(store, "m1", trust_new=False).missing_host_key(client, "10.0.0.1", keys[0])
    assert store.lookup("10.0.0.1") == {keys[0].get_name(): keys[0]}
    assert client.get_host_keys().lookup("10.0.0.1") is not None
    assert "first use" in caplog.text and "m1" in caplog.text


def test_policy_refuses_a_changed_key_without_override(tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    store = KnownHosts(tmp_path / "kh")
    store.record("10.0.0.1", keys[0], replace=False)
    with pytest.raises(HostKeyChanged) as info:
        TofuPolicy(store, "m1", trust_new=False).missing_host_key(paramiko.SSHClient(), "10.0.0.1", keys[1])
    e = info.value
    assert e.old_fingerprint == fingerprint(keys[0]) and e.new_fingerprint == fingerprint(keys[1])
    assert "m1" in str(e) and "--accept-new-host-keys" in str(e) and str(store.path) in str(e)
    assert store.lookup("10.0.0.1") == {keys[0].get_name(): keys[0]}


def test_policy_override_replaces_and_warns(tmp_path: Path, keys, caplog) -> None:  # type: ignore[no-untyped-def]
    store = KnownHosts(tmp_path / "kh")
    store.record("10.0.0.1", keys[0], replace=False)
    caplog.set_level("WARNING")
    TofuPolicy(store, "m1", trust_new=True).missing_host_key(paramiko.SSHClient(), "10.0.0.1", keys[1])
    assert store.lookup("10.0.0.1") == {keys[1].get_name(): keys[1]}
    assert fingerprint(keys[0]) in caplog.text and fingerprint(keys[1]) in caplog.text
