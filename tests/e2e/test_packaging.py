"""The Debian packages: cpack builds one .deb per binary; installed, they provide the binaries,
systemd units, default configs and the cdnrefresh user, and the installed engine serves."""
import glob
import json
import os
import pwd
import subprocess
import tempfile

import pytest

from conftest import sanitized_build, wait_until
from lab import BUILD_DIR, free_port

PACKAGES = ["cdnrefresh-engine", "cdnrefresh-agent", "cdnrefresh"]


@pytest.mark.skipif(os.getuid() != 0, reason="installing packages needs root")
def test_packages_install_and_run():
    if sanitized_build():
        pytest.skip("packages are built from the plain build, not the sanitizer build")
    out = tempfile.mkdtemp(prefix="cdr-deb-")
    subprocess.run(["cpack", "-G", "DEB", "-B", out], cwd=BUILD_DIR, check=True, capture_output=True)
    debs = sorted(glob.glob(os.path.join(out, "*.deb")))
    assert sorted(os.path.basename(d).split("_")[0] for d in debs) == sorted(PACKAGES)
    info = subprocess.run(["dpkg-deb", "-I", next(d for d in debs if "engine" in d)], capture_output=True,
                          text=True, check=True).stdout
    assert "libh2o" in info and "libsqlite3" in info  # dependencies found by dpkg-shlibdeps
    subprocess.run(["dpkg", "-i", *debs], check=True, capture_output=True)
    try:
        for binary in ("/usr/bin/cdnrefresh-engine", "/usr/bin/cdnrefresh-agent", "/usr/bin/cdnrefresh"):
            assert subprocess.run([binary, "--version"], capture_output=True).returncode == 0
        assert os.path.exists("/lib/systemd/system/cdnrefresh-engine.service") or \
            os.path.exists("/usr/lib/systemd/system/cdnrefresh-engine.service")
        assert os.path.exists("/etc/cdnrefresh/engine.ini") and os.path.exists("/etc/cdnrefresh/agent.ini")
        user = pwd.getpwnam("cdnrefresh")
        assert os.stat("/var/lib/cdnrefresh").st_uid == user.pw_uid
        # The installed engine with the shipped config, moved to free ports and a scratch dir.
        data = tempfile.mkdtemp(prefix="cdr-deb-data-")
        port = free_port()
        # The shipped config wants signed requests: a tenant made by the installed binary signs them.
        added = subprocess.run(["/usr/bin/cdnrefresh-engine", "tenant", "add", "acme", "--hosts", "a.example",
                                "--json", "--config", "/etc/cdnrefresh/engine.ini", "--data-dir", data],
                               capture_output=True, text=True, check=True)
        tenant = json.loads(added.stdout)
        # (and the secret an operator sets: the shipped placeholder is refused)
        engine = subprocess.Popen(["/usr/bin/cdnrefresh-engine", "--config", "/etc/cdnrefresh/engine.ini",
                                   "--callback-secret", "set-by-the-operator",
                                   "--data-dir", data, "--api-listen", f"127.0.0.1:{port}",
                                   "--agent-listen", f"127.0.0.1:{free_port()}",
                                   "--admin-listen", f"127.0.0.1:{free_port()}"], stderr=subprocess.PIPE)
        try:
            def accepted():
                result = subprocess.run(["/usr/bin/cdnrefresh", "--engine", f"http://127.0.0.1:{port}",
                                         "--key", tenant["access_key"], "--secret", tenant["secret"],
                                         "purge", "https://a.example/x"], capture_output=True, text=True)
                return result.returncode == 0
            wait_until(accepted, what="the installed engine to accept a purge")
        finally:
            engine.terminate()
            assert engine.wait(timeout=15) == 0
    finally:
        subprocess.run(["dpkg", "--purge", *PACKAGES], check=True, capture_output=True)
    assert not os.path.exists("/usr/bin/cdnrefresh-engine")
