"""A deployment on one machine: nginx (the shipped config) in front of three `workbench web` processes."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.conftest import ROOT, free_port
from tests.workbench.web.processes import WebProcess, redis_server, start_web, web_env
from workbench.certs import CertAuthority

MAIN = """worker_processes 1;
worker_rlimit_nofile 16384;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/workbench.conf;
}}
"""


@dataclass
class Cluster:
    """nginx's two ports, the CA bundle its certificate verifies with, and the web processes."""

    http_port: int
    https_port: int
    ca: Path
    webs: list[WebProcess]
    redis_url: str

    @property
    def https(self) -> str:
        """The public HTTPS base URL."""
        return f"https://127.0.0.1:{self.https_port}"


def nginx_config(prefix: Path, ports: list[int], http_port: int, https_port: int) -> str:
    """The shipped deploy/nginx/workbench.conf, moved to local ports and ``prefix``."""
    text = (ROOT / "deploy" / "nginx" / "workbench.conf").read_text()
    for name, port in zip(("web", "web2", "web3"), ports, strict=True):
        text = text.replace(f"server {name}:5001", f"server 127.0.0.1:{port}")
    text = text.replace("    listen [::]:80;\n", "").replace("    listen [::]:443 ssl;\n", "")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    text = text.replace("/etc/nginx/certs/", f"{prefix}/certs/")
    assert ":5001" not in text
    return text


@contextmanager
def nginx(ports: list[int]) -> Iterator[tuple[int, int, Path]]:
    """Our own nginx (never the system's) on free ports; yields (http port, https port, CA bundle)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    prefix = Path(tempfile.mkdtemp(prefix="workbench-nginx-"))
    prefix.chmod(0o755)
    authority = CertAuthority(prefix / "pki")
    authority.init()
    issued = authority.issue("localhost,127.0.0.1", prefix / "certs", server=True)
    issued.cert.rename(prefix / "certs" / "server.crt")
    issued.key.rename(prefix / "certs" / "server.key")
    for folder in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / folder).mkdir(parents=True)
        (prefix / "tmp" / folder).chmod(0o777)
    http_port, https_port = free_port(), free_port()
    (prefix / "workbench.conf").write_text(nginx_config(prefix, ports, http_port, https_port))
    (prefix / "nginx.conf").write_text(MAIN.format(prefix=prefix))
    command = [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 15
    while True:
        try:
            requests.get(f"http://127.0.0.1:{http_port}/", timeout=1, allow_redirects=False)
            break
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stderr.read() if process.stderr else ""
                raise AssertionError(f"nginx did not start: {output}") from None
            time.sleep(0.1)
    try:
        yield http_port, https_port, issued.ca
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(prefix, ignore_errors=True)


@contextmanager
def cluster(database_url: str, instances: int = 3) -> Iterator[Cluster]:
    """Redis, ``instances`` web processes sharing it and the database, nginx in front."""
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server())
        data = Path(tempfile.mkdtemp(prefix="workbench-cluster-"))
        stack.callback(shutil.rmtree, data, True)
        env = web_env(database_url, data, WORKBENCH_REDIS_URL=redis_url, WORKBENCH_TRUSTED_PROXIES="1")
        webs: list[WebProcess] = []
        for index in range(instances):
            # One of them runs the rule engine and the schedules; all serve HTTP ingest and Socket.IO.
            args = ["--scheduler"] if index == 0 else []
            web = start_web(env, *args)
            stack.callback(web.stop)
            webs.append(web)
        http_port, https_port, ca = stack.enter_context(nginx([web.port for web in webs]))
        yield Cluster(http_port, https_port, ca, webs, redis_url)
