"""An S3-compatible server for tests: moto's ``moto_server`` on 127.0.0.1, started and stopped by PID."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def s3_bucket(bucket: str = "runs") -> Iterator[str]:
    """A fresh server with ``bucket``; yields ``s3://bucket?endpoint_override=...&scheme=http&region=us-east-1``."""
    server_bin = Path(sys.executable).with_name("moto_server")
    if not server_bin.exists():
        pytest.skip("moto[server] is not installed (pip install -e '.[test]')")
    port = free_port()
    server = subprocess.Popen([str(server_bin), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={**os.environ, **CREDENTIALS})
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        while True:  # until it listens (or exits: then the test fails naming it)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, "moto_server exited at start"
                time.sleep(0.1)
        import pyarrow.fs as pafs

        query = f"endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
        fs, path = pafs.FileSystem.from_uri(f"s3://{bucket}?{query}&allow_bucket_creation=true")
        fs.create_dir(path)
        yield f"s3://{bucket}?{query}"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
