"""Starting the server as a newcomer does: `python3 dev.py serve`, `GET /`, another port.

Real processes: dev.py passes SIGINT/SIGTERM on to the server it starts (no orphan keeps the
port), and a port already in use is a one-line error naming `--port`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.chat_support import wait_for
from tests.conftest import free_port
from tests.processes import children_of

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).resolve().parent.parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def embedded_env(tmp_path: Path) -> dict[str, str]:
    """A newcomer's environment: no database or Redis configured, data under tmp_path."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "PORT"}}
    return {**env, "DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "WARNING"}


def ready_venv(tmp_path: Path) -> Path:
    """A virtual environment dev.py takes as installed (the test's own, linked), so that
    starting through dev.py installs nothing."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name in ("python", "skillswap"):
        (venv / "bin" / name).symlink_to(VENV / "bin" / name)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    (venv / ".installed-base").write_text(digest)
    return venv


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_dev_py_serve_passes_signals_to_the_server_and_frees_the_port(tmp_path, signum):
    port = free_port()
    env = {**embedded_env(tmp_path), "SKILLSWAP_VENV": str(ready_venv(tmp_path))}
    dev = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "dev.py"),
        "serve",
        "--port",
        str(port),
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

            async def answers() -> bool:
                if dev.returncode is not None:
                    raise RuntimeError(f"dev.py exited with {dev.returncode}")
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_for(answers, within=60, every=0.2)
            servers = children_of(dev.pid)
            assert len(servers) == 1
            (server,) = servers

            home = await client.get("/")
            assert home.status_code == 200
            links = home.json()
            base = f"http://127.0.0.1:{port}"
            assert links["docs"] == f"{base}/api/docs/"
            assert links["openapi"] == f"{base}/api/schema/"
            assert links["websocket"] == f"ws://127.0.0.1:{port}/ws/"
            browser = await client.get("/", headers={"Accept": "text/html,*/*;q=0.8"})
            assert browser.status_code == 302
            assert browser.headers["Location"] == f"{base}/api/docs/"
            assert (await client.get(browser.headers["Location"])).status_code == 200

        os.kill(dev.pid, signum)
        code = await asyncio.wait_for(dev.wait(), timeout=30)
        assert code == 0
        await wait_for(lambda: not alive(server), within=10)
        assert port_is_free(port)
    finally:
        if dev.returncode is None:
            dev.kill()
            await dev.wait()
        for pid in children_of(dev.pid):
            os.kill(pid, signal.SIGKILL)


def test_a_port_in_use_is_a_one_line_error_that_says_port(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "skillswap", "serve", "--port", str(port)],
            env=embedded_env(tmp_path),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: 127.0.0.1:{port} is already in use; pick another port with --port (or PORT=...)"
    ]
    assert done.stdout == ""
    # Refused before anything else happened: no database was made.
    assert not (tmp_path / "data").exists()
