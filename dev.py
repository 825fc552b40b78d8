#!/usr/bin/env python3
"""Set up a virtual environment and run SkillSwap or its tests. Needs only Python 3.11+.

    python3 dev.py serve   # install, migrate the embedded SQLite default, serve on :8000
    python3 dev.py serve --port 8080   # anything after `serve` goes to `skillswap serve`
    python3 dev.py test    # install with the test tools, run the whole suite
    python3 dev.py check   # lint, format, types, the import contracts and no import cycle
    python3 dev.py fuzz    # schemathesis over the OpenAPI document against a real server
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("SKILLSWAP_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _ensure_env(extras: str) -> None:
    if sys.version_info < (3, 11):
        sys.exit("SkillSwap needs Python 3.11 or newer")
    if not (BIN / "python").exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    # An install with the test tools has everything a plain one has.
    for kind in [extras or "base", *(["dev"] if not extras else [])]:
        done = VENV / f".installed-{kind}"
        if done.exists() and done.read_text() == digest:
            return
    stamp = VENV / f".installed-{extras or 'base'}"
    print("installing dependencies", flush=True)
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    subprocess.run([str(BIN / "python"), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(BIN / "python"), "-m", "pip", "install", "-q", "-e", target], check=True)
    stamp.write_text(digest)


def _run(command: list[str]) -> int:
    """Run `command` as a child that SIGINT and SIGTERM sent to this process reach too.

    Without this a `kill` of dev.py (a supervisor, an IDE's stop button) would leave the server
    running, still holding its port. The child's exit status is returned (128 + N for signal N).
    """
    child = subprocess.Popen(command)

    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


def main(argv: list[str]) -> int:
    action = argv[0] if argv else "serve"
    rest = argv[1:]
    os.chdir(ROOT)
    if action == "serve":
        _ensure_env("")
        return _run([str(BIN / "skillswap"), "serve", *rest])
    if action == "test":
        _ensure_env("dev")
        return _run([str(BIN / "python"), "-m", "pytest", *rest])
    if action == "check":
        _ensure_env("dev")
        code = subprocess.call([str(BIN / "ruff"), "check", "skillswap", "tests", "bench", "tools"])
        code |= subprocess.call([str(BIN / "ruff"), "format", "--check", "skillswap", "tests", "bench", "tools"])
        code |= subprocess.call([str(BIN / "mypy")])
        # The layer contracts of pyproject's [tool.importlinter], then no import cycle at all.
        code |= subprocess.call([str(BIN / "lint-imports")])
        return code | subprocess.call([str(BIN / "python"), "tools/import_cycles.py", "skillswap"])
    if action == "fuzz":
        _ensure_env("dev")
        return _run([str(BIN / "python"), "tools/fuzz_api.py", *rest])
    sys.exit(f"unknown action {action!r}: use serve, test, check or fuzz")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
