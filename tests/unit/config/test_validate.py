"""Every validation rule, through the CLI as a user meets it: exit 2, one line per
problem naming the key path, no traceback, no secret.

Why through `cli.main`: the acceptance criterion is the user's experience (exit code and
message), not just that some exception was raised somewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config.helpers import isolate_home, minimal
from eggo_nornir.cli import main
from eggo_nornir.config import ConfigError, check_config_dict, load_config, load_config_dict
from eggo_nornir.config.validate import dst_allowed, split_host_port, unknown_keys

DATA = Path(__file__).resolve().parents[2] / "data"
BAD = sorted((DATA / "bad").glob("*.yaml"))


@pytest.fixture(autouse=True)
def no_default_ssh_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_home(tmp_path, monkeypatch)


def problems_of(data: dict[str, Any], base_dir: Path | None = None) -> list[str]:
    _, problems = check_config_dict(data, base_dir)
    return [str(p) for p in problems]


def test_there_are_at_least_twenty_distinct_bad_configs() -> None:
    assert len(BAD) >= 20
    assert len({p.read_text() for p in BAD}) == len(BAD)


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_exits_2_and_names_the_key(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    rc = main(["check", "-f", str(path)])
    out, err = capsys.readouterr()
    assert rc == 2
    assert expected in err, err
    assert "Traceback" not in out + err
    assert out == ""


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_never_echoes_a_password(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["check", str(path)])
    err = capsys.readouterr().err
    assert "secret" not in err and "hunter2" not in err


# ---------------------------------------------------------------- the acceptance cases
def test_manual_example_as_printed_names_test0_twice_with_both_ips() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(DATA / "manual-example-as-printed.yaml")
    dup = [str(p) for p in exc.value.problems if "test0" in str(p)]
    assert len(dup) == 1
    line = dup[0]
    assert line.startswith("nodes[0].name:")
    assert (
        line.count("test0") == 1 and "masters[0] (192.168.0.1)" in line and "nodes[0] (192.168.0.2)" in line
    )


def test_duplicate_names_and_duplicate_ips_list_every_problem() -> None:
    data = minimal(
        masters=[{"name": "a", "ip": "192.168.10.1"}, {"name": "b", "ip": "192.168.10.2"}],
        workers=[
            {"name": "a", "ip": "192.168.10.3"},  # name a again, other IP
            {"name": "c", "ip": "192.168.10.2"},  # IP of b, other name
            {"name": "b", "ip": "192.168.10.4"},  # name b again, other IP
        ],
        etcds=[{"name": "a", "ip": "192.168.10.1", "port": 2222}],  # same machine, other port
    )
    with pytest.raises(ConfigError) as exc:
        load_config_dict(data)
    text = str(exc.value)
    assert "workers[0].name: name 'a' is given to two machines: masters[0] (192.168.10.1)" in text
    assert "workers[2].name: name 'b' is given to two machines: masters[1] (192.168.10.2)" in text
    assert "workers[1].name: the machine 192.168.10.2 has name 'b' in masters[1] but 'c' here" in text
    assert "etcds[0].port: the machine 192.168.10.1 has port 22 in masters[0] but 2222 here" in text
    assert len(exc.value.problems) == 4


def test_all_problems_are_reported_at_once() -> None:
    data = minimal(runtime="crio", network={"podcird": "x"}, service={"cidr": "bad"})
    data["masters"][0]["ip"] = "nope"
    paths = [p.split(":")[0] for p in problems_of(data)]
    assert {"runtime", "network.podcird", "service.cidr", "masters[0].ip"} <= set(paths)


# ---------------------------------------------------------------- rules, one by one
def test_unknown_key_suggestions() -> None:
    got = [
        str(p) for p in unknown_keys({"network": {"podcird": 1}, "podcidr": 1, "masters": [{"nmae": "x"}]})
    ]
    assert got == [
        "network.podcird: unknown key; did you mean network.podcidr?",
        "podcidr: unknown key; did you mean network.podcidr?",
        "masters[0].nmae: unknown key; did you mean masters[0].name?",
    ]
    assert [str(p) for p in unknown_keys({"zzz": 1})] == ["zzz: unknown key; remove it"]


def test_pacakges_typo_is_accepted_on_purpose() -> None:
    assert unknown_keys({"pacakges": {"node": [{"name": "a", "type": "repo", "dstpath": ""}]}}) == []


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("/usr/bin/kubelet", True),
        ("/usr/bin", False),  # strictly below only
        ("/usr/bin/../../etc", False),
        ("/usr/bin/../bin/x", True),
        ("/etc/kubernetes", True),
        ("/etc/kubernetes/addons", True),
        ("/etc/kubernetes-evil", False),
        ("/opt/cni/bin", True),
        ("/root/.eggo/package", True),
        ("/tmp", False),
        ("/tmp/x", False),  # issue 15: /tmp is no longer a destination
        ("//usr/bin/x", True),
        ("/", False),
    ],
)
def test_dst_whitelist_after_normalisation(path: str, ok: bool) -> None:
    assert dst_allowed(path) is ok


def test_bin_package_into_usr_bin_is_fine_but_escaping_names_are_not() -> None:
    good = minimal(
        install={
            "etcd": [{"name": "etcd", "type": "repo"}],
            "addition": {"master": [{"name": "https://x/y.yaml", "type": "yaml"}]},
        }
    )
    assert problems_of(good) == []
    bad = minimal(
        install={"addition": {"master": [{"name": "../../etc/passwd", "type": "bin", "dst": "/usr/bin"}]}}
    )
    bad["install"]["package-source"] = {
        "srcpath": {"amd64": str(DATA / "packages" / "packages-amd64.tar.gz")}
    }
    assert any("install.addition.master[0].dst:" in p for p in problems_of(bad))


def test_package_source_dstpath_outside_whitelist() -> None:
    data = minimal(install={"package-source": {"dstpath": "/var/lib/eggo"}})
    assert any(
        p.startswith("install.package-source.dstpath: is removed at cleanup") for p in problems_of(data)
    )


def test_tarball_packages_without_any_tarball() -> None:
    data = minimal(install={"etcd": [{"name": "etcd", "type": "pkg"}]})
    assert problems_of(data) == [
        "install.package-source.srcpath: packages etcd come from a package tarball, but none is configured"
    ]


def test_unused_arch_tarball_is_not_required_to_exist() -> None:
    src = {"amd64": str(DATA / "packages" / "packages-amd64.tar.gz"), "arm64": "/nonexistent/arm.tar.gz"}
    assert problems_of(minimal(install={"package-source": {"srcpath": src}})) == []


@pytest.mark.parametrize(
    ("endpoint", "ok"),
    [
        ("10.0.0.1:6443", True),
        ("api.example.com:443", True),
        ("[fd00::1]:6443", True),
        ("10.0.0.1", False),
        ("fd00::1:6443", False),
        ("https://10.0.0.1:6443", False),
        ("Bad_Name:6443", False),
        ("10.0.0.1:0", False),
        ("10.0.0.1:http", False),
    ],
)
def test_apiserver_endpoint(endpoint: str, ok: bool) -> None:
    if ok:
        split_host_port(endpoint)
        assert problems_of(minimal(**{"apiserver-endpoint": endpoint})) == []
    else:
        with pytest.raises(ValueError):
            split_host_port(endpoint)
        assert any(
            p.startswith("apiserver-endpoint:")
            for p in problems_of(minimal(**{"apiserver-endpoint": endpoint}))
        )


def test_external_ca_complete_dir_passes(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    for f in ("ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key"):
        (ca / f).parent.mkdir(parents=True, exist_ok=True)
        (ca / f).write_text("x")
    assert problems_of(minimal(**{"external-ca": True, "external-ca-path": "ca"}), tmp_path) == []
    assert problems_of(minimal(**{"external-ca": True})) == [
        "external-ca-path: is required when external-ca is true"
    ]


@pytest.mark.parametrize(
    ("extra", "ok"),
    [
        ({"runtime": "docker"}, True),  # the manual's runtime, no version given
        ({"runtime": "docker", "kubernetes-version": "1.23.17"}, True),
        ({"runtime": "docker", "kubernetes-version": "1.24.0"}, False),
        ({"runtime": "docker", "kubernetes-version": "1.30", "cri-dockerd": True}, True),
        ({"runtime": "DOCKER", "kubernetes-version": "v2.0"}, False),
    ],
)
def test_docker_needs_cri_dockerd_from_1_24(extra: dict[str, Any], ok: bool) -> None:
    assert (problems_of(minimal(**extra)) == []) is ok


def test_dns_vip_must_match_dnsaddr() -> None:
    assert problems_of(minimal(**{"dns-vip": "10.32.0.11"})) == [
        "dns-vip: must equal service.dnsaddr (10.32.0.10): kubelets would ask an unserved address "
        "(got '10.32.0.11')"
    ]


def test_credentials_from_default_key(tmp_path: Path) -> None:
    data = minimal()
    del data["password"]
    assert problems_of(data) == [
        "password: no SSH credential: set password or private-key-path (globally or per host)"
    ]
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519").write_text("key")
    assert problems_of(data) == []


def test_one_host_without_credentials() -> None:
    data = minimal(masters=[{"name": "m0", "ip": "192.168.10.1", "password": "p"}])
    del data["password"]
    assert problems_of(data) == ["workers[0]: no SSH credential for w0: set password or private-key-path"]


def test_password_problems_never_show_the_value() -> None:
    data = minimal(password=3.14159)
    assert problems_of(data) == ["password: must be a string, not a number: quote it"]
    data = minimal(
        masters=[{"name": "m0", "ip": "192.168.10.1", "password": "a"}],
        etcds=[{"name": "m0", "ip": "192.168.10.1", "password": "b"}],
    )
    text = " ".join(problems_of(data))
    assert "etcds[0].password" in text and "'a'" not in text and "'b'" not in text


def test_pki_rules() -> None:
    got = problems_of(
        minimal(pki={"key-algorithm": "dsa", "cert-validity-days": 30, "renew-before-days": 30})
    )
    assert got == [
        "pki.key-algorithm: must be one of ecdsa-p256, rsa-2048, rsa-4096 (got 'dsa')",
        "pki.renew-before-days: must be less than pki.cert-validity-days (30) (got 30)",
    ]


def test_extra_args_rules() -> None:
    got = problems_of(
        minimal(
            **{
                "config-extra-args": [
                    {"name": "kubelet", "extra-args": {"v": "2"}},
                    {"name": "etcd", "extra-args": {"--quota": "1"}},
                ]
            }
        )
    )
    assert got == [
        "config-extra-args[0].extra-args.v: flag names need their leading dashes, e.g. --v (got 'v')",
        "config-extra-args[1].extra-args.--quota: etcd extra args are environment variables such as "
        "ETCD_QUOTA_BACKEND_BYTES (got '--quota')",
    ]


def test_schedule_only_for_shell() -> None:
    data = minimal(install={"addition": {"master": [{"name": "a", "type": "repo", "schedule": "prejoin"}]}})
    assert problems_of(data) == [
        "install.addition.master[0].schedule: only shell packages have a schedule (type is repo)"
    ]


def test_sans_and_misc_values() -> None:
    got = problems_of(
        minimal(
            **{
                "apiserver-cert-sans": {"dnsnames": ["*.example.com", "bad name"], "ips": ["1.2.3"]},
                "dns-domain": "Cluster.Local",
                "cni-bin-dir": "/opt/cni/bin,relative/dir",
                "runtime-endpoint": "/run/containerd/containerd.sock",
                "network": {"node-cidr-mask": 8},
            }
        )
    )
    assert got == [
        "dns-domain: must be a lower-case DNS name (got 'Cluster.Local')",
        "cni-bin-dir: entry 2 must be an absolute path (got 'relative/dir')",
        "runtime-endpoint: must be a unix:// or tcp:// URL (got '/run/containerd/containerd.sock')",
        "network.node-cidr-mask: must be between the pod CIDR's prefix (16) and 30 (got 8)",
        "apiserver-cert-sans.dnsnames[1]: not a valid DNS name (got 'bad name')",
        "apiserver-cert-sans.ips[0]: not a valid IP address (got '1.2.3')",
    ]


def test_wrong_types_are_problems_not_tracebacks() -> None:
    data = minimal(
        service="10.32.0.0/16",
        network=["x"],
        workers=[["192.168.10.2"]],
        install={"etcd": {"name": "etcd"}},
        **{
            "open-ports": {"worker": {"port": 1}},
            "external-ca": "yes",
            "apiserver-cert-sans": {"ips": "1.2.3.4"},
        },
    )
    got = sorted(problems_of(data))
    assert got == sorted(
        [
            "external-ca: must be true or false (got 'yes')",
            "service: must be a mapping, not a string",
            "network: must be a mapping, not a list",
            "workers[0]: must be a mapping with at least ip (and name, port, arch), not a list",
            "install.etcd: must be a list, not a mapping",
            "apiserver-cert-sans.ips: must be a list, not a string",
            "open-ports.worker: must be a list, not a mapping",
        ]
    )


# ---------------------------------------------------------------- no traceback, whatever the input
WEIRD: tuple[Any, ...] = (None, 0, -1, 1.5, True, "", "x", [], {}, [1], {"a": 1}, [{"a": None}], [[]])


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Put `value` at a schema path; list levels get a one-element list of mappings."""
    from eggo_nornir.config.validate import SCHEMA

    spec: Any = SCHEMA
    node: Any = data
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        spec = spec[part]
        last = i == len(parts) - 1
        if last:
            node[part] = value
        elif isinstance(spec, list):
            spec = spec[0]
            node[part] = [{}] if not isinstance(node.get(part), list) else node[part]
            node = node[part][0]
        else:
            node[part] = node.get(part) if isinstance(node.get(part), dict) else {}
            node = node[part]
    return data


def _schema_paths() -> list[str]:
    from eggo_nornir.config.validate import _ALL_PATHS

    return list(_ALL_PATHS)


@pytest.mark.parametrize("dotted", _schema_paths())
def test_any_value_anywhere_gives_problems_not_exceptions(dotted: str) -> None:
    for value in WEIRD:
        data = _set(minimal(), dotted, value)
        cfg, problems = check_config_dict(data)
        assert cfg is not None
        for p in problems:
            assert p.path or p.message


# ---------------------------------------------------------------- found by the fuzz suite
def test_unknown_keys_that_are_empty_dotted_or_hold_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each problem stays one line with a path, whatever the key (test_loader_fuzz.py found
    `'': None` giving a problem without a path, and an ESC in a key reaching the terminal)."""
    data = minimal(**{"": None, "\x1b[2J": 1, "net.work": {}}, network={"a\nb": 1})
    assert sorted(problems_of(data)) == sorted(
        [
            "['\\x1b[2J']: unknown key; remove it",
            "['']: unknown key; remove it",
            "['net.work']: unknown key; did you mean network?",
            "network['a\\nb']: unknown key; remove it",
        ]
    )
    path = tmp_path / "deploy.yaml"
    path.write_text('cluster-id: demo\npassword: x\nmasters: [{ip: 10.1.1.1}]\n"": 1\n"a\\nb": 2\n')
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"error: {path}: 2 problems",
        "  ['']: unknown key; remove it",
        "  ['a\\nb']: unknown key; remove it",
    ]


def test_a_huge_value_is_echoed_cut_short() -> None:
    (line,) = problems_of(minimal(**{"cluster-id": "Ü" * 5000}))
    assert line.startswith("cluster-id: must be a lower-case DNS name (a-z, 0-9, '-', '.') (got 'ÜÜÜ")
    assert line.endswith("... (5000 characters))") and len(line) < 200


@pytest.mark.parametrize("cidr", ["10.96.0.0", "10.96.0.0/32", "10.96.0.0/31", "fd00::/128"])
def test_a_single_address_service_cidr_is_a_problem_not_a_traceback(
    cidr: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`service.cidr: 10.96.0.0` (no prefix: a /32) crashed the gateway rule, because
    ipaddress returns a list, not an iterator, for a /32's hosts (found by the fuzz suite)."""
    got = problems_of(minimal(service={"cidr": cidr}))
    assert any(p.startswith("service.gateway: ") for p in got), got
    path = tmp_path / "deploy.yaml"
    text = f"cluster-id: demo\npassword: x\nmasters: [{{ip: 10.1.1.1}}]\nservice: {{cidr: {cidr!r}}}\n"
    path.write_text(text)
    assert main(["check", str(path)]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        (
            {"node-cidr-mask": 32},
            "network.node-cidr-mask: must be between the pod CIDR's prefix (16) and 30 (got 32)",
        ),
        (
            {"podcidr": "10.244.0.0/24", "node-cidr-mask": 24},
            "network.podcidr: 10.244.0.0/24 split into /24 holds 1 node CIDRs, but there are 2 workers",
        ),
    ],
)
def test_node_cidr_mask_rules_match_what_render_enforces(network: dict[str, Any], expected: str) -> None:
    """`check` said OK to a config that `deploy` then refused while rendering the node CIDRs."""
    data = minimal(network=network, workers=[{"ip": "192.168.10.2"}, {"ip": "192.168.10.3"}])
    assert problems_of(data) == [expected]
