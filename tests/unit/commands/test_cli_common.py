"""The CLI's shared behaviour: global flags anywhere, --json problems, --concurrency and its old
name, --limit, confirmation of destructive commands, render FILE, kubeconfig, completion."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from eggo_nornir.cli import build_parser, main

DATA = Path(__file__).resolve().parents[2] / "data"
CONFIG = str(DATA / "upstream-template.yaml")


@pytest.fixture(autouse=True)
def eggo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("EGGO_HOME", str(home))
    return home


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "-d", "status", CONFIG],
        ["status", CONFIG, "--json", "-d"],
        ["-d", "status", "--json", CONFIG],
    ],
)
def test_global_flags_work_before_or_after_the_subcommand(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.json is True and args.debug is True


@pytest.mark.parametrize("argv", [["-v"], ["--version"], ["deploy", "-v"], ["certs", "check", "--version"]])
def test_version_anywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("eggo-nornir ")


def test_json_config_error_prints_the_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("masters: 3\n")
    for argv in (["--json", "check", str(bad)], ["deploy", "-f", str(bad), "--json"]):
        assert main(argv) == 2
        out = json.loads(capsys.readouterr().out)
        assert out["ok"] is False and out["file"] == str(bad)
        assert "masters: must be a list, not a number" in [p["text"] for p in out["problems"]]


def test_text_config_error_lists_problems_under_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("masters: 3\n")
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: 2 problems\n") and "  masters: must be a list" in err


def test_concurrency_and_its_hidden_old_name() -> None:
    parser = build_parser()
    assert parser.parse_args(["deploy", CONFIG]).concurrency == 20
    assert parser.parse_args(["deploy", CONFIG, "--concurrency", "5"]).concurrency == 5
    assert parser.parse_args(["status", CONFIG, "--workers", "3"]).concurrency == 3
    assert "--workers" not in parser._subparsers._group_actions[0].choices["deploy"].format_help()  # type: ignore[union-attr]
    # template's --workers are machines
    assert parser.parse_args(["template", "--workers", "10.0.0.2"]).workers == ["10.0.0.2"]


def test_limit_unknown_node_is_refused_before_any_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", CONFIG, "--limit", "nosuch,k8s-master-0"]) == 2
    assert "no node 'nosuch'" in capsys.readouterr().err


def test_limit_accepts_names_and_ips() -> None:
    from eggo_nornir import Cluster

    cluster = Cluster.from_file(CONFIG)
    first = cluster.config.nodes[0]
    assert cluster.resolve_limit([first.ip, first.name]) == [first.name]
    assert cluster.resolve_limit(None) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["cleanup", CONFIG],
        ["delete", "--config", CONFIG, "k8s-worker-0"],
    ],
)
def test_destructive_commands_refuse_off_a_terminal_without_yes(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # not a terminal: never read
    assert main(argv) == 2
    assert "refused without --yes" in capsys.readouterr().err


def test_confirm_asks_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from eggo_nornir.commands._common import confirm
    from eggo_nornir.errors import UsageError

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    args = argparse.Namespace(yes=False, dry_run=False)
    confirm(args, "Go?", stdin=Tty("yes\n"))
    with pytest.raises(UsageError, match="not confirmed"):
        confirm(args, "Go?", stdin=Tty("\n"))
    confirm(argparse.Namespace(yes=True), "Go?", stdin=io.StringIO(""))
    confirm(argparse.Namespace(yes=False, dry_run=True), "Go?", stdin=io.StringIO(""))


@pytest.mark.parametrize("how", [["CONFIG"], ["-f", "CONFIG"]])
def test_render_takes_file_positionally_or_with_f(how: list[str], tmp_path: Path) -> None:
    argv = ["render", *[CONFIG if a == "CONFIG" else a for a in how], "-o", str(tmp_path / "out")]
    assert main(argv) == 0
    assert list((tmp_path / "out").glob("*.manifest.json"))


def test_kubeconfig_prints_or_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kubeconfig", CONFIG]) == 0
    printed = capsys.readouterr().out
    assert "client-key-data" in printed
    out = tmp_path / "admin.conf"
    assert main(["kubeconfig", CONFIG, "-o", str(out)]) == 0
    assert out.read_text() == printed and os.stat(out).st_mode & 0o777 == 0o600
    assert main(["kubeconfig", CONFIG, "-o", str(out)]) == 2  # kept without --force


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert "eggo-nornir" in script and "--concurrency" in script


def test_every_command_help_has_an_example() -> None:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0]  # type: ignore[union-attr]
    missing = [name for name, p in sub.choices.items() if "example" not in p.format_help()]
    assert missing == []


def _no_password_config(tmp_path: Path) -> Path:
    import yaml

    data = {
        "cluster-id": "demo",
        "masters": [{"name": "m0", "ip": "10.238.2.11"}],
        "bastion": {"ip": "10.238.1.13"},
    }
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_ask_pass_is_refused_off_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no default ~/.ssh key
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))  # not a terminal: never read
    assert main(["status", "--ask-pass", str(_no_password_config(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "--ask-pass needs a terminal" in err and "EGGO_PASSWORD" in err


def test_password_from_env_or_one_prompt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from eggo_nornir.commands import _common

    monkeypatch.setenv("HOME", str(tmp_path))
    path = _no_password_config(tmp_path)
    args = build_parser().parse_args(["status", str(path)])
    monkeypatch.setenv("EGGO_PASSWORD", "env-pw-1")
    _path, cfg = _common.load(args)
    assert cfg.password == "env-pw-1" and cfg.bastion and cfg.bastion.password == "env-pw-1"

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    prompts: list[str] = []
    monkeypatch.setattr(
        _common.getpass, "getpass", lambda prompt, stream=None: prompts.append(prompt) or "tty-pw"
    )
    monkeypatch.setattr("sys.stdin", Tty(""))
    asked = build_parser().parse_args(["status", "-k", str(path)])
    assert _common.load(asked)[1].password == "tty-pw"  # the prompt wins over the variable
    assert _common.load(asked)[1].password == "tty-pw"
    assert len(prompts) == 1  # asked once per command
    monkeypatch.delenv("EGGO_PASSWORD")
    assert _common.login_password(argparse.Namespace(ask_pass=False)) is None
