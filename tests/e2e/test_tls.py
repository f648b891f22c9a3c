"""TLS on the agent link: certificates from a throwaway CA made with the openssl command; the
agent verifies the engine's certificate (CA and name), the engine can require client
certificates, and a mismatch on either side keeps the agent from ever coming online."""
import os
import subprocess
import time

import pytest

from conftest import fetch, wait_until

SITE = "http://www.example.com"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "1", "-subj", f"/CN={name}",
            cwd=directory)
    return os.path.join(directory, f"{name}.pem")


def make_cert(directory, ca, name, extensions):
    ext = os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        f.write(extensions)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile", ext, cwd=directory)
    return os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.key")


@pytest.fixture
def pki(data_dir):
    directory = os.path.join(data_dir, "pki")
    os.makedirs(directory)
    ca = make_ca(directory, "ca")
    other_ca = make_ca(directory, "other-ca")
    server = make_cert(directory, "ca", "engine", "subjectAltName=IP:127.0.0.1,DNS:engine.test\n")
    client = make_cert(directory, "ca", "edge-1", "extendedKeyUsage=clientAuth\n")
    return {"ca": ca, "other_ca": other_ca, "server": server, "client": client}


def never_online(engine, agent, seconds=2.0):
    """The agent keeps dialing (it is not refused, the handshake fails) but never comes online."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert agent.running()
        assert engine.nodes().get(agent.node_id, {}).get("state") != "online"
        time.sleep(0.1)


def test_purges_flow_over_a_verified_tls_link(lab, pki):
    origin = lab.origin({"/a.css": b"a"})
    edge = lab.edge("edge1", origin)
    cert, key = pki["server"]
    engine = lab.engine("--agent-tls-cert", cert, "--agent-tls-key", key)
    assert "over TLS" in engine.read_log()
    lab.agent(engine, "edge-1", edge, extra_args=("--tls-ca", pki["ca"]))
    engine.wait_online("edge-1")
    fetch(edge, SITE + "/a.css")
    assert engine.wait_task(engine.purge([SITE + "/a.css"])[2]["task_id"])["status"] == "done"
    assert fetch(edge, SITE + "/a.css")[1] == "MISS"
    # The name in the certificate is checked too: a DNS name it carries works, another does not.
    lab.agent(engine, "edge-2", None, extra_args=("--tls-ca", pki["ca"], "--tls-server-name", "engine.test"))
    engine.wait_online("edge-2")
    wrong_name = lab.agent(engine, "edge-3", None,
                           extra_args=("--tls-ca", pki["ca"], "--tls-server-name", "other.test"))
    never_online(engine, wrong_name)
    assert "TLS handshake failed" in wrong_name.read_log()


def test_an_untrusted_engine_or_a_plain_agent_never_links(lab, pki):
    cert, key = pki["server"]
    engine = lab.engine("--agent-tls-cert", cert, "--agent-tls-key", key)
    untrusting = lab.agent(engine, "edge-1", None, extra_args=("--tls-ca", pki["other_ca"]))
    plain = lab.agent(engine, "edge-2", None)
    never_online(engine, untrusting)
    never_online(engine, plain)
    log = untrusting.read_log()
    assert "TLS handshake failed" in log and "certificate verify failed" in log
    assert "TLS handshake failed" in engine.read_log()  # the plain agent's Hello is not TLS


def test_the_engine_can_require_client_certificates(lab, pki):
    cert, key = pki["server"]
    engine = lab.engine("--agent-tls-cert", cert, "--agent-tls-key", key, "--agent-tls-client-ca", pki["ca"])
    anonymous = lab.agent(engine, "edge-2", None, extra_args=("--tls-ca", pki["ca"]))
    client_cert, client_key = pki["client"]
    lab.agent(engine, "edge-1", None,
              extra_args=("--tls-ca", pki["ca"], "--tls-cert", client_cert, "--tls-key", client_key))
    engine.wait_online("edge-1")
    never_online(engine, anonymous)
    assert "certificate" in engine.read_log()
