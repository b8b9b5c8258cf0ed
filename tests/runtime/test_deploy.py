"""Issue #25 item 2: the production examples in docs/deploy/ are exercised, not just written. The
systemd unit passes `systemd-analyze verify` and its ExecStart, run as written with the shipped env
file filled in, serves until /healthz answers (on PostgreSQL, as in production) and stops on its
KillSignal within TimeoutStopSec. The nginx site passes `nginx -t` and carries a signed slash
command over HTTPS to `serve` and its answer back. A tool that is not installed skips its test with
the reason (CI installs nginx: .ci/run)."""

import datetime
import os
import shutil
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fake_slack import TOKEN, FakeSlackServer
from tests.runtime.test_serve_http import free_port, wait_until
from tests.slack_requests import SIGNING_SECRET, slash_command

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "docs" / "deploy"
BIN = Path(sys.executable).parent / "platform-feedback"  # what `pip install` put beside the interpreter


def unit() -> dict[str, list[str]]:
    """The unit file's keys -> values, in order (a key may repeat)."""
    keys: dict[str, list[str]] = {}
    for line in (DEPLOY / "platform-feedback.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            keys.setdefault(key, []).append(value)
    return keys


def env_file(**filled: str) -> dict[str, str]:
    """The shipped env file's settings (systemd's KEY=value lines), with ``filled`` set over them."""
    values = {}
    for line in (DEPLOY / "platform-feedback.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = value
    missing = set(filled) - set(values) - {"SLACK_API_URL"}
    assert not missing, f"the env file has no {missing}"
    return values | filled


def test_the_licence_is_the_one_pyproject_names():
    assert '{ text = "MIT" }' in (REPO / "pyproject.toml").read_text()
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n")


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_unit(tmp_path):
    installed = "/opt/platform-feedback/bin/platform-feedback"
    text = (DEPLOY / "platform-feedback.service").read_text()
    assert installed in text
    (tmp_path / "platform-feedback.service").write_text(text.replace(installed, str(BIN)))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "platform-feedback.service")],
                            capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if "platform-feedback.service" in line and "EnvironmentFile" not in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


def test_the_units_command_line_serves_until_healthz_and_stops_on_its_signal(tmp_path, pg_url):
    keys = unit()
    [exec_start] = keys["ExecStart"]
    argv = exec_start.split()
    assert argv[0] == "/opt/platform-feedback/bin/platform-feedback" and BIN.exists()
    [home] = [v.split("=", 1)[1] for v in keys["Environment"] if v.startswith("HOME=")]
    assert home == keys["WorkingDirectory"][0]
    (tmp_path / "policy.yml").write_text("hosts: {users: [U0HOST0001]}\ntriage: {channel: C0TRIAGE01}\n")
    port = free_port()
    with FakeSlackServer() as fake:
        env = env_file(SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET, DATABASE_URL=pg_url, PORT=str(port),
                       CONFIG_FILE=str(tmp_path / "policy.yml"), SLACK_API_URL=fake.url + "/api/")
        assert env["HOST"] == "127.0.0.1"  # behind the proxy on the same machine
        log = tmp_path / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([str(BIN), *argv[1:]], cwd=tmp_path,
                                    env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **env},
                                    stdout=out, stderr=subprocess.STDOUT)
        try:
            def healthy():
                assert proc.poll() is None, log.read_text(errors="replace")
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(healthy, timeout=120, what="/healthz", log=log)
            proc.send_signal(getattr(signal, keys["KillSignal"][0]))
            proc.wait(timeout=int(keys["TimeoutStopSec"][0]))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode in (0, -signal.SIGTERM) and "Traceback" not in log.read_text(errors="replace")


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM), made with the cryptography package."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def nginx_site(tmp_path: Path, *, https_port: int, http_port: int, serve_port: int) -> Path:
    """The shipped site with this machine's ports and a test certificate, inside a main config of
    its own (pid, logs and temp files in ``tmp_path``). Each replacement must find its text."""
    cert, key = self_signed(tmp_path)
    site = (DEPLOY / "nginx.conf").read_text()
    for old, new in [("listen 80;", f"listen 127.0.0.1:{http_port};"), ("listen [::]:80;", ""),
                     ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"), ("listen [::]:443 ssl;", ""),
                     ("/etc/letsencrypt/live/feedback.example.com/fullchain.pem", str(cert)),
                     ("/etc/letsencrypt/live/feedback.example.com/privkey.pem", str(key)),
                     ("127.0.0.1:3000", f"127.0.0.1:{serve_port}")]:
        assert old in site, f"docs/deploy/nginx.conf no longer has {old!r}: update tests/runtime/test_deploy.py"
        site = site.replace(old, new)
    (tmp_path / "site.conf").write_text(site)
    temp = "".join(f"    {kind}_temp_path {tmp_path}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main = tmp_path / "nginx.conf"
    main.write_text(f"worker_processes 1;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
                    f"http {{\n    access_log {tmp_path}/access.log;\n{temp}    include {tmp_path}/site.conf;\n}}\n")
    return main


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed (Debian: apt-get install nginx-light)")
def test_nginx_carries_a_signed_slash_command_over_https_to_serve_and_back(tmp_path):
    from tests.runtime.test_serve_http import serving

    https_port, http_port = free_port(), free_port()
    nginx = shutil.which("nginx")
    with FakeSlackServer() as fake, serving(tmp_path, fake, f"sqlite:///{tmp_path}/bot.db") as base:
        serve_port = int(base.rsplit(":", 1)[1])
        main = nginx_site(tmp_path, https_port=https_port, http_port=http_port, serve_port=serve_port)
        checked = subprocess.run([nginx, "-t", "-c", str(main), "-p", str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stderr
        proxy = subprocess.Popen([nginx, "-c", str(main), "-p", str(tmp_path), "-g", "daemon off;"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            trust = ssl.create_default_context(cafile=str(tmp_path / "fullchain.pem"))
            with httpx.Client(base_url=f"https://127.0.0.1:{https_port}", verify=trust, timeout=10) as http:
                def up():
                    assert proxy.poll() is None, (tmp_path / "error.log").read_text()
                    try:
                        return http.get("/healthz").status_code == 200
                    except httpx.TransportError:
                        return False

                wait_until(up, timeout=60, what="/healthz through nginx", log=tmp_path / "error.log")
                redirect = httpx.get(f"http://127.0.0.1:{http_port}/slack/events", timeout=10)
                assert redirect.status_code == 301 and redirect.headers["location"].startswith("https://")
                body, headers = slash_command("the VPN drops every hour", fake_url=fake.url)
                resp = http.post("/slack/events", content=body.encode(), headers=headers)
                assert resp.status_code == 200
                assert "FB-1" in resp.json()["text"]  # a one-line report is stored before its ack, which answers it
                assert http.get("/metrics").status_code == 200  # from 127.0.0.1: allowed
        finally:
            proxy.send_signal(signal.SIGQUIT)  # nginx's graceful stop
            try:
                proxy.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proxy.kill()
                proxy.wait()
