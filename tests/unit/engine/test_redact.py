"""Redactor, RedactingFilter and make_nornir: a known password never reaches nornir.log or the report."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from engine_fakes import GLOBAL_PW, NODE_PW, SECRETS, SUDO_PW, failing_task, make_cfg
from nornir.core.task import Result, Task

from eggo_nornir.engine.nornir_factory import make_nornir
from eggo_nornir.engine.phases import Phase, run_phases
from eggo_nornir.engine.redact import RedactingFilter, Redactor, install_filter
from eggo_nornir.engine.runner import EggoThreadedRunner


def test_redactor_masks_every_secret_of_the_config() -> None:
    redactor = Redactor.from_config(make_cfg())
    text = f"a {GLOBAL_PW} b {NODE_PW} c {SUDO_PW} d"
    assert redactor.redact(text) == "a *** b *** c *** d"
    assert GLOBAL_PW not in repr(redactor)


def test_quoted_forms_are_masked_too() -> None:
    redactor = Redactor([NODE_PW])  # contains a single quote
    assert NODE_PW not in redactor.redact(repr({"password": NODE_PW}))
    assert "N0de" not in redactor.redact(repr({"password": NODE_PW}))
    assert "N0de" not in redactor.redact(json.dumps({"password": NODE_PW}))
    import shlex

    assert "N0de" not in redactor.redact(f"echo {shlex.quote(NODE_PW)} | sudo -S true")


def test_longest_secret_wins_and_empty_ones_are_ignored() -> None:
    redactor = Redactor(["abc", "abcdef", "", None])
    assert redactor.redact("xabcdefx abc") == "x***x ***"
    assert Redactor().redact("nothing to hide") == "nothing to hide"


def test_secrets_from_the_state_dir(tmp_path: Path) -> None:
    (tmp_path / "bootstrap-token").write_text("abcdef.0123456789abcdef\n")
    (tmp_path / "encryption-config.yaml").write_text(
        "kind: EncryptionConfiguration\nresources:\n- providers:\n  - aescbc:\n"
        "      keys:\n      - name: key1\n        secret: c2VjcmV0LWtleS1ieXRlcw==\n  - identity: {}\n"
    )
    redactor = Redactor.from_config(make_cfg(), state_dir=tmp_path)
    assert redactor.redact("--token=abcdef.0123456789abcdef") == "--token=***"
    assert redactor.redact("secret 0123456789abcdef") == "secret ***"
    assert redactor.redact("key c2VjcmV0LWtleS1ieXRlcw==") == "key ***"
    assert len(Redactor.from_config(make_cfg(), state_dir=tmp_path / "missing")) > 0  # absent files: fine


def test_filter_masks_message_args_and_exception() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(Redactor(SECRETS)))
    logger = logging.getLogger("eggo_nornir.test.redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(f"in the message {GLOBAL_PW}")
        logger.warning("in an arg %s and %r", SUDO_PW, {"pw": NODE_PW})
        try:
            raise RuntimeError(f"in the exception {GLOBAL_PW}")
        except RuntimeError:
            logger.exception("failed")
        logger.warning("stack", stack_info=True)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    for secret in SECRETS:
        assert secret not in text
    assert "in the message ***" in text and "in an arg ***" in text
    assert "RuntimeError: in the exception ***" in text


def test_install_filter_replaces_earlier_filters() -> None:
    handler = logging.StreamHandler(io.StringIO())
    install_filter(Redactor(["a1"]), loggers=(), handlers=[handler])
    install_filter(Redactor(["b2"]), loggers=(), handlers=[handler])
    assert len([f for f in handler.filters if isinstance(f, RedactingFilter)]) == 1


def test_make_nornir(tmp_path: Path, restore_logging: None) -> None:
    nr = make_nornir(make_cfg(), state_dir=tmp_path, num_workers=4, dry_run=True)
    assert isinstance(nr.runner, EggoThreadedRunner) and nr.runner.num_workers == 4
    assert nr.data.dry_run is True
    assert list(nr.inventory.hosts) == ["m0", "m1", "m2", "w0", "w1", "lb"]
    ssh_config = Path(nr.config.ssh.config_file)
    assert ssh_config.exists() and ssh_config.read_bytes() == b""
    assert ssh_config.parent == tmp_path
    log = Path(nr.config.logging.log_file)
    assert log.name == "nornir.log" and log.parent.parent == tmp_path / "runs"
    assert log.stat().st_mode & 0o777 == 0o600
    assert log.parent.stat().st_mode & 0o777 == 0o700
    # a second run in the same process gets its own file, and the first one is closed
    nr2 = make_nornir(make_cfg(), state_dir=tmp_path)
    assert nr2.config.logging.log_file != nr.config.logging.log_file


def test_password_never_reaches_nornir_log_or_report(tmp_path: Path, restore_logging: None) -> None:
    cfg = make_cfg()
    root_stream = io.StringIO()
    root_handler = logging.StreamHandler(root_stream)
    logging.getLogger().addHandler(root_handler)  # e.g. the CLI's basicConfig
    try:
        nr = make_nornir(cfg, state_dir=tmp_path)
        log = logging.getLogger("eggo_nornir.tasks.fake")

        def leaky(task: Task) -> Result:
            log.warning(f"message with {GLOBAL_PW}")
            log.warning("arg with %s", SUDO_PW)
            logging.getLogger().warning("root with %s", NODE_PW)
            raise RuntimeError(f"exception with {NODE_PW}")

        result = run_phases(
            nr,
            cfg,
            [
                Phase("leaky", leaky, "etcd", policy="continue"),
                Phase("more", failing_task, "worker", policy="continue", params={"fail_on": ("w0",)}),
            ],
        )
    finally:
        logging.getLogger().removeHandler(root_handler)
    text = Path(nr.config.logging.log_file).read_text()
    assert "exception with ***" in text  # Nornir's ERROR traceback made it, masked
    assert "message with ***" in text and "arg with ***" in text
    assert "Traceback" in text
    assert "root with ***" in root_stream.getvalue()
    report = result.to_json() + result.summary() + result._repr_html_()
    assert "exception with ***" in report
    for secret in SECRETS:
        assert secret not in text
        assert secret not in report
        assert secret not in root_stream.getvalue()


@pytest.mark.parametrize("secret", ["p", "p@ss w0rd\\n", 'q"uote'])
def test_awkward_secrets(secret: str) -> None:
    redactor = Redactor([secret])
    for form in (secret, repr(secret), json.dumps(secret)):
        assert secret not in redactor.redact(f"x {form} y")


# ---------------------------------------------------------------- private keys (found by test_secrets_e2e)
def _rsa_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _body_lines(pem: str) -> list[str]:
    return [ln for ln in pem.splitlines() if ln and not ln.startswith("-----")]


def test_a_state_dir_key_is_masked_whole_cut_in_pieces_escaped_and_embedded(tmp_path: Path) -> None:
    """A hook that ran `cat sa.key >&2` put the key's last 1500 characters (no BEGIN line) into
    the error text, the report, nornir.log and the summary on stdout."""
    pem = _rsa_pem()
    (tmp_path / "pki" / "etcd").mkdir(parents=True)
    (tmp_path / "pki" / "etcd" / "peer.key").write_text(pem)
    redactor = Redactor.from_config(make_cfg(), state_dir=tmp_path)
    import base64

    texts = {
        "whole": f"before\n{pem}after",
        "tail": "hook: exit status 3: " + pem[-1500:],
        "head": pem[:300],
        "no markers": "\n".join(_body_lines(pem)[3:9]),
        "json": json.dumps({"error": pem[-1000:-30]}),
        "repr": repr(pem[200:900]),
        "one line": f"x {_body_lines(pem)[7]} y",
        "client-key-data": "client-key-data: " + base64.b64encode(pem.encode()).decode(),
    }
    for name, text in texts.items():
        masked = redactor.redact(text)
        leaked = [ln for ln in _body_lines(pem) if ln[5:-5] in masked]
        assert leaked == [], (name, masked)
        assert "***" in masked
    assert redactor.redact(texts["whole"]).startswith("before\n***")
    assert redactor.redact("sha256 " + "ab" * 32 + " /etc/kubernetes/pki/sa.key") == (
        "sha256 " + "ab" * 32 + " /etc/kubernetes/pki/sa.key"
    )


def test_any_private_key_block_is_masked_even_an_unknown_one() -> None:
    pem = _rsa_pem()
    redactor = Redactor()
    assert redactor.redact(f"a: {pem}b") == "a: ***\nb"
    masked = redactor.redact("tail\n" + pem[-400:] + "exit 3")
    assert not any(ln in masked for ln in _body_lines(pem)[-4:]) and masked.endswith("exit 3")
