"""Starts a fernet-sidecar binary for a benchmark: a fresh key, a Unix
socket in a temporary directory, no metrics listener."""

import contextlib
import os
import subprocess
import tempfile
import time

from cryptography.fernet import Fernet


@contextlib.contextmanager
def sidecar(binary):
    """Yields (target, key) of a sidecar serving until the block ends."""
    key = Fernet.generate_key().decode()
    with tempfile.TemporaryDirectory() as tmp:
        socket_path = os.path.join(tmp, "fernet.sock")
        env = dict(os.environ, DJANGO_ENCRYPTION_KEY=key)
        env.pop("OLD_DJANGO_ENCRYPTION_KEY", None)
        proc = subprocess.Popen(
            [binary, "--addr", "unix://" + socket_path, "--metrics-addr", ""],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while not os.path.exists(socket_path):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("%s did not start" % binary)
                time.sleep(0.02)
            yield "unix://" + socket_path, key
        finally:
            proc.terminate()
            proc.wait(10)


def table(title, header, rows):
    """Prints rows as a Markdown table."""
    print("\n" + title + "\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
