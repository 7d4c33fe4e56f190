"""deploy.yaml's `bastion:` block and the password given apart from the file (`password=`):
conversion, every problem as `key.path: what is wrong (got X)` through the CLI (exit 2, no
secret), and the dump (redacted when saved)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from config.helpers import isolate_home, minimal
from eggo_nornir.cli import main
from eggo_nornir.config import Bastion, check_config_dict, dump_config, load_config, load_config_dict
from eggo_nornir.engine.redact import Redactor

SECRET = "jump-secret-8812"


@pytest.fixture(autouse=True)
def no_default_ssh_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_home(tmp_path, monkeypatch)


def config(**extra: Any) -> dict[str, Any]:
    return minimal(username="ops", password="global-pw", **extra)


def test_bastion_takes_the_global_credentials_unless_it_has_its_own(tmp_path: Path) -> None:
    cfg = load_config_dict(config(bastion={"ip": "10.238.1.13"}))
    assert cfg.bastion == Bastion(ip="10.238.1.13", port=22, username="ops", password="global-pw")
    key = tmp_path / "jump_key"
    key.write_text("key")
    own = load_config_dict(
        config(
            bastion={"ip": "10.238.1.13", "port": "2222", "username": "jump", "private-key-path": "jump_key"}
        ),
        base_dir=tmp_path,
    )
    assert own.bastion == Bastion("10.238.1.13", 2222, "jump", None, str(key))
    assert load_config_dict(config()).bastion is None
    assert SECRET not in repr(load_config_dict(config(bastion={"ip": "10.238.1.13", "password": SECRET})))


def test_every_bastion_problem_is_listed_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deploy.yaml"
    data = config(
        bastion={
            "ip": "jump.example",
            "port": 70000,
            "user": "x",
            "private-key-path": "missing",
            "password": 1.5,
        }
    )
    path.write_text(yaml.safe_dump(data))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bastion.ip: not a valid IP address (got 'jump.example')" in err
    assert "bastion.port: must be between 1 and 65535 (got 70000)" in err
    assert "bastion.user: unknown key" in err
    assert "bastion.password: must be a string, not a number: quote it" in err and "1.5" not in err
    assert (
        f"bastion.private-key-path: no such key file (used for the bastion) (got '{tmp_path / 'missing'}')"
        in err
    )
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("bastion", "expected"),
    [
        ({"port": 22}, "bastion.ip: is required"),
        ("10.0.0.1", "bastion: must be a mapping, not a string"),
    ],
)
def test_bastion_shape_problems(bastion: Any, expected: str) -> None:
    _cfg, problems = check_config_dict(config(bastion=bastion))
    assert any(str(p).startswith(expected) for p in problems), problems


def test_a_bastion_without_any_credential_is_refused_before_any_host() -> None:
    data = config(bastion={"ip": "10.238.1.13"})
    del data["password"]
    _cfg, problems = check_config_dict(data)
    texts = [str(p) for p in problems]
    assert any(t.startswith("bastion: no SSH credential for the bastion") for t in texts), texts
    # the password given apart from the file (--ask-pass, EGGO_PASSWORD) satisfies both checks
    cfg = load_config_dict(data, password=SECRET)
    assert cfg.password == SECRET and cfg.bastion and cfg.bastion.password == SECRET
    assert all(n.password == SECRET for n in cfg.nodes)


def test_given_password_replaces_the_global_one_but_not_per_host_ones(tmp_path: Path) -> None:
    data = config()
    data["workers"][0]["password"] = "own-pw"
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = load_config(path, password=SECRET)
    assert cfg.node("m0").password == SECRET and cfg.node("w0").password == "own-pw"


def test_dump_round_trips_and_redacts_the_bastion_password() -> None:
    cfg = load_config_dict(config(bastion={"ip": "10.238.1.13", "username": "jump", "password": SECRET}))
    again = load_config_dict(yaml.safe_load(dump_config(cfg)))
    assert again.bastion == cfg.bastion
    saved = dump_config(cfg, redact=True)
    assert SECRET not in saved and "bastion:" in saved
    assert Redactor.from_config(cfg).redact(f"x {SECRET} y") == "x *** y"
