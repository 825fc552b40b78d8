"""Real processes in tests: started with their output in a file, stopped or killed, and what
/proc (Linux) says about their children."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def children_of(pid: int) -> set[int]:
    """The ids of the processes whose parent is `pid`."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


class Child:
    """A `python -m skillswap ...` (or any) process, its output in a file: a pipe nobody reads
    while the test runs would fill up and stall the process."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.name = name
        self.process = process
        self.log_path = log_path

    @classmethod
    async def start(cls, name: str, *argv: str, env: dict[str, str], logs: Path) -> Child:
        log_path = logs / f"{name}.log"
        with log_path.open("ab") as output:
            process = await asyncio.create_subprocess_exec(
                *argv, env=env, cwd=ROOT, stdout=output, stderr=output
            )
        return cls(name, process, log_path)

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is finished or given back."""
        self.process.kill()
        await self.process.wait()

    async def stop(self) -> int:
        """SIGTERM, then its exit status."""
        if self.running:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout=45)


async def skillswap(name: str, *args: str, env: dict[str, str], logs: Path) -> Child:
    return await Child.start(name, sys.executable, "-m", "skillswap", *args, env=env, logs=logs)
