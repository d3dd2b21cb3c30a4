"""`opmerge dashboard` starts the app and passes unknown flags to `streamlit run`."""

import socket
import subprocess
import sys
import time
import urllib.request


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dashboard_command_serves_the_app():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "opmerge_core", "dashboard", "--port", str(port),
                             "--address", "127.0.0.1", "--server.headless", "true",
                             "--server.fileWatcherType", "none"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    assert r.read() == b"ok"
                    return
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.5)
        raise AssertionError("the dashboard did not answer within 90 s")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
