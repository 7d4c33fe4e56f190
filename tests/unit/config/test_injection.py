"""Issue 15, part 1: no config value can inject a line into a unit, a file or a command line.

Each case is one injection the security review tried: it must exit 2 at `check`, naming the
key path the user wrote, and the renderer's quoting filters must refuse it too (defence in
depth, for values that reach them without passing the loader).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from config.helpers import isolate_home, minimal
from eggo_nornir.cli import main
from eggo_nornir.config import check_config_dict
from eggo_nornir.render.templating import env_value, systemd_arg

SECRET = "pa\nss-S3cret"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_home(tmp_path, monkeypatch)


def repo(*names: str, ptype: str = "repo", **extra: Any) -> dict[str, Any]:
    return {"install": {"addition": {"master": [{"name": n, "type": ptype, **extra} for n in names]}}}


UNIT_NEWLINE = "--vmodule=foo=1\nExecStartPre=/bin/sh -c 'id > /tmp/pwned'\n#"
CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "flag name with a newline",
        minimal(**{"config-extra-args": [{"name": "kube-apiserver", "extra-args": {UNIT_NEWLINE: "1"}}]}),
        "config-extra-args[0].extra-args[",
    ),
    (
        "flag value with a newline",
        minimal(
            **{"config-extra-args": [{"name": "kubelet", "extra-args": {"--v": "2\nExecStartPre=/bin/id"}}]}
        ),
        "config-extra-args[0].extra-args.--v: holds a control character",
    ),
    (
        "pause-image with a newline",
        minimal(**{"pause-image": "k8s.gcr.io/pause:3.2\nUser=root"}),
        "pause-image:",
    ),
    ("pause-image with a trailing CR", minimal(**{"pause-image": "pause:3.2\r"}), "pause-image:"),
    (
        "insecure registry with NUL",
        minimal(**{"insecure-registries": ["reg:5000\x00x"]}),
        "insecure-registries[0]:",
    ),
    (
        "host name with ESC",
        minimal(masters=[{"name": "m0\x1b[2J", "ip": "192.168.10.1"}]),
        "masters[0].name:",
    ),
    ("plugin arg key with a newline", minimal(network={"pluginargs": {"a\nb": "1"}}), "network.pluginargs["),
    (
        "etcd env value with a newline",
        minimal(**{"config-extra-args": [{"name": "etcd", "extra-args": {"ETCD_X": "1\nETCD_Y=2"}}]}),
        "config-extra-args[0].extra-args.ETCD_X:",
    ),
    ("unicode line separator", minimal(**{"dns-domain": "cluster.local\u2028x"}), "dns-domain:"),
    (
        "flag name in upper case",
        minimal(
            **{"config-extra-args": [{"name": "kube-apiserver", "extra-args": {"--Profiling": "false"}}]}
        ),
        "config-extra-args[0].extra-args.--Profiling: must be one flag name",
    ),
    (
        "flag name with a space",
        minimal(**{"config-extra-args": [{"name": "kubelet", "extra-args": {"--v 9 --x": "1"}}]}),
        "must be one flag name",
    ),
    (
        "flag name with an equals sign",
        minimal(**{"config-extra-args": [{"name": "kube-scheduler", "extra-args": {"--v=9": "1"}}]}),
        "must be one flag name",
    ),
    (
        "repo package that is an apt option",
        minimal(**repo("-oAPT::Update::Pre-Invoke::=id")),
        "install.addition.master[0].name: not a package name",
    ),
    (
        "repo package with a space",
        minimal(**repo("nginx; id")),
        "install.addition.master[0].name: not a package name",
    ),
    ("repo package with a glob", minimal(**repo("ngin*")), "not a package name"),
    ("pkg package with a slash", minimal(**repo("../x", ptype="pkg")), "not a package name"),
    (
        "shell hook outside its dir",
        minimal(**repo("../../../../usr/bin/id", ptype="shell", schedule="prejoin")),
        "install.addition.master[0].name: a shell package must be a plain file name",
    ),
    ("shell hook named ..", minimal(**repo("..", ptype="shell", schedule="prejoin")), "plain file name"),
    (
        "bin package with a slash",
        minimal(**repo("sub/tool", ptype="bin", dst="/usr/local/bin")),
        "plain file name",
    ),
    (
        "file package that is an option",
        minimal(**repo("-rf", ptype="file", dst="/etc/kubernetes")),
        "plain file name",
    ),
    ("image with a slash", minimal(**repo("/etc/shadow", ptype="image")), "plain file name"),
    (
        "addon in a sub dir",
        minimal(addons=[{"type": "file", "filename": "../x.yaml"}]),
        "addons[0].filename: must be a plain file name",
    ),
]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_injection_exits_2_at_check_with_the_key_path(
    data: dict[str, Any], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(data))
    rc = main(["check", str(path)])
    out, err = capsys.readouterr()
    assert rc == 2, out
    assert expected in err, err
    assert "Traceback" not in err
    assert all("\n" not in ln and "\r" not in ln for ln in err.splitlines())


def test_a_password_with_a_control_character_is_refused_without_echoing_it() -> None:
    _, problems = check_config_dict(minimal(password=SECRET))
    text = "\n".join(map(str, problems))
    assert "password: holds a control character" in text
    assert "S3cret" not in text


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "nul\x00", "esc\x1b", "del\x7f", "ls\u2028"])
def test_quoting_filters_refuse_control_characters(value: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        systemd_arg(value)
    with pytest.raises(ValueError, match="control character"):
        env_value(value)


def test_plain_values_still_pass() -> None:
    data = minimal(
        **{
            "config-extra-args": [
                {"name": "kube-apiserver", "extra-args": {"--feature-gates": "A=true,B=false"}}
            ]
        },
        **repo("kubernetes-client", "libfoo+plus", "python3.11", "pkg@1:2.0"),
        addons=[{"type": "file", "filename": "calico.yaml"}],
    )
    _, problems = check_config_dict(data)
    assert problems == []
    assert systemd_arg("a b") == '"a b"' and env_value("x") == "x"
