"""Upload and download of a 50 MB file through the official `anthropic` SDK, beside a plain `cp` of it.

The REST server runs in this process on a loopback port (`tests/rest_serving.py`: uvicorn, the real app, an
in-memory secret store, no Docker); the client is `client.beta.files` (`upload` from an open file, `download`
streamed to a file). Each round, interleaved: upload, download, and `cp` of the same file into the same temp
dir. Figures are MB/s (1 MB = 2^20 bytes), median over the rounds; the downloaded bytes are checked against the
source. No target is set by the issue: the figures are reported.

    .venv/bin/python benchmarks/bench_file_transfer.py [--size-mb 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import statistics
import subprocess
import sys
from typing import Any

from _common import REPO_ROOT, emit, environment, log, now, ratio, temp_dir

sys.path.insert(0, str(REPO_ROOT / "tests"))

from fake_sandboxes import FakeSandboxes
from rest_serving import rest_server

from server.core.config import ServerConfig
from vault.memory_store import MemoryStore

MB = 1024 * 1024


def mb_per_s(size: int, seconds: float) -> float:
    return round(size / MB / seconds, 1)


def run(size_mb: int, rounds: int) -> dict[str, Any]:
    with temp_dir("files") as scratch:
        source = scratch / "payload.bin"
        with source.open("wb") as out:
            for _ in range(size_mb):
                out.write(os.urandom(MB))
        size = source.stat().st_size
        data_dir = scratch / "data"
        data_dir.mkdir()
        config = ServerConfig(data_dir=data_dir, model="claude-bench-model")
        uploads, downloads, copies = [], [], []
        with rest_server(config, sandboxes=lambda _tg: FakeSandboxes(), secrets=MemoryStore()) as rest:
            client = rest.client(timeout=600)
            for index in range(rounds):
                start = now()
                with source.open("rb") as handle:
                    uploaded = client.beta.files.upload(file=("payload.bin", handle, "application/octet-stream"))
                uploads.append(now() - start)
                target = scratch / f"down-{index}.bin"
                start = now()
                with client.beta.files.with_streaming_response.download(uploaded.id) as response:
                    response.stream_to_file(target)
                downloads.append(now() - start)
                assert filecmp.cmp(source, target, shallow=False), "the download differs from the upload"
                copied = scratch / f"cp-{index}.bin"
                start = now()
                subprocess.run(["cp", str(source), str(copied)], check=True)
                copies.append(now() - start)
                for leftover in (target, copied):
                    leftover.unlink()
                client.beta.files.delete(uploaded.id)
                log(f"file_transfer: round {index + 1}/{rounds} done")
    upload_rate = mb_per_s(size, statistics.median(uploads))
    download_rate = mb_per_s(size, statistics.median(downloads))
    cp_rate = mb_per_s(size, statistics.median(copies))
    return {
        "benchmark": "file_transfer",
        "targets": [],
        "meets_target": True,
        "upload_mb_per_s": upload_rate,
        "download_mb_per_s": download_rate,
        "upload_s": {"median": round(statistics.median(uploads), 3), "max": round(max(uploads), 3)},
        "download_s": {"median": round(statistics.median(downloads), 3), "max": round(max(downloads), 3)},
        "baseline": {"cp_mb_per_s": cp_rate, "cp_s": {"median": round(statistics.median(copies), 3)}},
        "ratios": {"upload_vs_cp": ratio(upload_rate, cp_rate), "download_vs_cp": ratio(download_rate, cp_rate)},
        "params": {"size_mb": size_mb, "rounds": rounds},
        "env": environment(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    emit(run(args.size_mb, args.rounds))


if __name__ == "__main__":
    main()
