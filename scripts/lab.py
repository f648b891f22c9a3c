"""A lab of real processes on loopback for the demo and the end-to-end tests: the engine, agents,
an nginx origin and edge caches of every kind the agent drives (nginx, Varnish, Squid, Apache
Traffic Server), each running the config shipped in deploy/ with its placeholders filled in. Edges
are set up as production edges are: each also serves HTTPS (nginx itself; the others behind the
TLS terminator of deploy/nginx/tls-terminator.conf, which sends X-Forwarded-Proto), and the origin
compresses text, so its answers carry Vary: Accept-Encoding."""
import atexit
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD_DIR = os.path.abspath(os.environ.get("CDR_BUILD_DIR", os.path.join(ROOT, "build")))
ENGINE_BIN = os.path.join(BUILD_DIR, "cdnrefresh-engine")
AGENT_BIN = os.path.join(BUILD_DIR, "cdnrefresh-agent")
CLI_BIN = os.path.join(BUILD_DIR, "cdnrefresh")
NGINX_BIN = "/usr/sbin/nginx"
VARNISHD_BIN = "/usr/sbin/varnishd"
SQUID_BIN = "/usr/sbin/squid"
TRAFFIC_MANAGER_BIN = "/usr/bin/traffic_manager"
PURGE_MODULE = "/usr/lib/nginx/modules/ngx_http_cache_purge_module.so"
PG_SERVER = os.path.join(ROOT, "tests", "pg-server")
# The store the lab's engines use: "sqlite" (each in its data dir), or "postgres" (each in a
# database of its own on one PostgreSQL server the lab starts at first use and stops at exit).
STORE = os.environ.get("CDR_STORE", "sqlite")


_handed_out = set()


def free_port():
    """A loopback port nothing listens on, never the same twice in this process: the kernel may
    hand back a port just released, and two of our listeners must not be given the same one."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_until(check, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


def fill(path, values):
    """The text of a deploy/ config with its @PLACEHOLDERS@ replaced."""
    with open(path) as f:
        text = f.read()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    return text


def edge_certificate(work_dir):
    """A self-signed certificate and key for the edges' HTTPS entry points (made once per work
    dir): the agent and the tests reach their own edges and verify no certificate."""
    cert, key = os.path.join(work_dir, "edge-cert.pem"), os.path.join(work_dir, "edge-key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "30", "-subj", "/CN=edge.test"], check=True, capture_output=True)
    return cert, key


def open_to_dropped_users(work_dir, prefix):
    """varnishd and squid started as root read their config and write their logs as their own
    user: let it through work_dir (a 0700 temporary directory) into prefix."""
    if os.getuid() == 0:
        os.chmod(work_dir, os.stat(work_dir).st_mode | 0o711)
        os.chmod(prefix, 0o777)


def wait_listening(process, port, what, log=lambda: ""):
    def listening():
        if process.proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {process.read_log()} {log()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False
    wait_until(listening, timeout=30, what=f"{what} on {port}")


class Process:
    """A child process with its log in a file; stop() sends SIGTERM and waits."""

    def __init__(self, log_path):
        self.log_path = log_path
        self.proc = None
        self.log = None
        self.wrapper = []  # a command to run the process under, e.g. valgrind and its options
        self.companions = []  # processes stopped with this one (a cache's TLS terminator)
        self.tls_port = None  # a cache's HTTPS entry point

    def spawn(self, args):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*self.wrapper, *args], stdout=self.log, stderr=self.log)

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def https_args(self):
        """The agent's setting for a cache's HTTPS entry point, where https:// preloads go."""
        return ["--cache-https-url", f"https://127.0.0.1:{self.tls_port}"] if self.tls_port else []

    def stop(self):
        for companion in self.companions:
            companion.stop()
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()
        return self.proc.returncode if self.proc else None


_postgres = {}  # the lab's PostgreSQL server: "address", and "databases" by engine data dir


def postgres_store(data_dir):
    """The store address of the engine of data_dir on the lab's PostgreSQL server: the same
    database each time that engine starts, a new one for a new data dir."""
    if not _postgres:
        directory = tempfile.mkdtemp(prefix="cdr-lab-pg-")
        started = subprocess.run([PG_SERVER, "start", directory], capture_output=True, text=True)
        if started.returncode != 0:
            raise RuntimeError(f"cannot start PostgreSQL: {started.stderr}")
        atexit.register(subprocess.run, [PG_SERVER, "stop", directory])
        _postgres.update(address=started.stdout.strip(), databases={}, directory=directory)
    databases = _postgres["databases"]
    key = os.path.abspath(data_dir)
    if key not in databases:
        databases[key] = f"engine_{len(databases)}"
        subprocess.run(["psql", _postgres["address"], "-qc", f"CREATE DATABASE {databases[key]}"],
                       check=True, capture_output=True)
    return _postgres["address"].rsplit("/", 1)[0] + "/" + databases[key]


def postgres_outage(command):
    """Stops the lab's PostgreSQL server at once, as a crash would ("pause"), or starts it again
    on its port with its data ("resume")."""
    subprocess.run([PG_SERVER, command, _postgres["directory"]], check=True)


class Engine(Process):
    """cdnrefresh-engine with its own data dir and ports; restartable on the same dir. With
    dev=False it takes only signed requests and serves the operators' endpoints on admin_port."""

    def __init__(self, data_dir, extra_args=(), dev=True, synchronous="normal"):
        os.makedirs(data_dir, exist_ok=True)
        super().__init__(os.path.join(data_dir, "engine.log"))
        self.data_dir = data_dir
        self.port = free_port()
        self.agent_port = free_port()
        self.admin_port = None if dev else free_port()
        self.extra_args = list(extra_args)
        self.dev = dev
        self.synchronous = synchronous

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def agent_address(self):
        return f"127.0.0.1:{self.agent_port}"

    def start(self, timeout=None):
        """Spawns the engine and waits for its /healthz (timeout seconds: 10, 60 under a wrapper)."""
        # Signed mode refuses the public default callback secret: the lab's engines set their own.
        mode = ["--dev"] if self.dev else ["--admin-listen", f"127.0.0.1:{self.admin_port}",
                                           "--callback-secret", "lab-callback-secret"]
        if STORE == "postgres" and "--store" not in self.extra_args:
            mode += ["--store", self.store_address]
        self.spawn([ENGINE_BIN, *mode, "--data-dir", self.data_dir, "--api-listen", f"127.0.0.1:{self.port}",
                    "--agent-listen", self.agent_address, "--synchronous", self.synchronous, *self.extra_args])

        def healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited with {self.proc.returncode}: {self.read_log()}")
            try:
                return self.request("GET", "/healthz")[0] == 200
            except OSError:
                return False
        wait_until(healthy, timeout=timeout or (60 if self.wrapper else 10), what="engine health")
        return self

    @property
    def store_address(self):
        """Where the engine keeps its tasks: its --store, else the lab's choice (CDR_STORE)."""
        if "--store" in self.extra_args:
            return self.extra_args[self.extra_args.index("--store") + 1]
        return postgres_store(self.data_dir) if STORE == "postgres" else f"sqlite:{self.data_dir}"

    def store_sql(self, script):
        """Runs SQL statements on the engine's store (SQLite's or PostgreSQL's, the engine running
        or not; SQL both take); returns the rows of the last one, each a tuple of strings."""
        if self.store_address.startswith("postgresql:"):
            out = subprocess.run(["psql", self.store_address, "-qtAX", "-v", "ON_ERROR_STOP=1"],
                                 input=script, capture_output=True, text=True, check=True).stdout
            return [tuple(line.split("|")) for line in out.splitlines() if line]
        import sqlite3
        db = sqlite3.connect(os.path.join(self.store_address[len("sqlite:"):], "cdnrefresh.db"))
        *statements, last = [s for s in script.split(";") if s.strip()]
        for statement in statements:
            db.execute(statement)
        rows = [tuple(str(v) for v in row) for row in db.execute(last)]
        db.commit()
        db.close()
        return rows

    def request(self, method, path, body=None, raw=None, conn=None, headers=None, port=None):
        """Sends one request; returns (status, headers dict, parsed JSON or raw text)."""
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=10)
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        all_headers = {"Content-Type": "application/json"} if payload is not None else {}
        all_headers.update(headers or {})
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        result_headers = {k.lower(): v for k, v in response.getheaders()}
        if own:
            conn.close()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data.decode(errors="replace")
        return response.status, result_headers, parsed

    def admin(self, method, path, body=None):
        """A request to the operators' endpoints: the admin listener, or the API port in dev mode."""
        return self.request(method, path, body, port=self.admin_port)

    def purge(self, urls, **fields):
        return self.request("POST", "/v1/purge", {"urls": urls, **fields})

    def task(self, task_id):
        return self.request("GET", f"/v1/tasks/{task_id}")[2]

    def wait_task(self, task_id, timeout=20.0):
        """Waits until the task is in a final state; returns it."""
        final = {"done", "partial", "failed", "canceled"}
        return wait_until(lambda: (lambda t: t if t["status"] in final else None)(self.task(task_id)),
                          timeout=timeout, what=f"task {task_id} to finish")

    def nodes(self):
        """Every node, page after page of GET /v1/nodes, by id."""
        nodes, cursor = {}, None
        while True:
            page = self.admin("GET", "/v1/nodes?limit=1000" + (f"&cursor={cursor}" if cursor else ""))[2]
            nodes.update((n["node_id"], n) for n in page["nodes"])
            cursor = page["next_cursor"]
            if not cursor:
                return nodes

    def wait_online(self, *node_ids, timeout=10.0):
        wait_until(lambda: all(self.nodes().get(n, {}).get("state") == "online" for n in node_ids),
                   timeout=timeout, what=f"nodes {node_ids} online")


def start_simulated_agents(engine, count, *options):
    """The simulated agents (bench/fanout.c): count agents in one process answering all work and
    heartbeats until killed, dialing again when the engine goes away; returns the process once
    every agent was welcomed."""
    sim = subprocess.Popen([os.path.join(BUILD_DIR, "cdr-bench-fanout"), *options, engine.url,
                            engine.agent_address, str(count), "0"], stdout=subprocess.PIPE, text=True)
    line = sim.stdout.readline()
    if "connected" not in line:
        sim.kill()
        raise RuntimeError(f"simulated agents stopped: {line.strip()} (exit {sim.wait()})")
    return sim


def raise_open_files():
    """Raises this process's open-file limit to its hard limit (inherited by the engine and the
    simulated agents a benchmark starts); returns that limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def run_in_child(script, build, args, timeout):
    """Runs a benchmark script again, with --child and args, against build (lab reads
    CDR_BUILD_DIR at import, so another build needs another process); returns the JSON its last
    line printed."""
    env = dict(os.environ, CDR_BUILD_DIR=os.path.abspath(build))
    out = subprocess.run([sys.executable, os.path.abspath(script), "--child", *map(str, args)],
                         env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{build}: {out.stdout}{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def stop_bench(engine, sim, work):
    """The end of a benchmark: its simulated agents (if started) killed, then its engine stopped
    and its work dir removed."""
    if sim:
        sim.kill()
        sim.wait()
    engine.stop()
    shutil.rmtree(work, ignore_errors=True)


class Agent(Process):
    """An agent for an nginx cache at cache_url, or for any cache object given as cache (its
    agent_args() say how the agent drives it)."""

    def __init__(self, work_dir, node_id, engine_address, cache_url="", cache_dir="", groups="",
                 token="", extra_args=(), cache=None):
        super().__init__(os.path.join(work_dir, f"agent-{node_id}.log"))
        if cache is not None:
            cache_args = cache.agent_args()
        else:  # an nginx cache (or a stand-in for one) taking exact purges at cache_url too
            cache_args = ["--cache", "nginx", "--cache-url", cache_url, "--nginx-purge-url", cache_url]
            if cache_dir:
                cache_args += ["--nginx-cache-dir", cache_dir]
        self.args = [AGENT_BIN, "--node-id", node_id, "--engine", engine_address, *cache_args,
                     "--token", token, "--log-level", "debug", *extra_args]
        if groups:
            self.args += ["--groups", groups]
        self.node_id = node_id

    def start(self):
        self.spawn(self.args)
        return self


class Nginx(Process):
    """One nginx process running deploy/nginx/<kind>.conf with the placeholders filled in."""

    def __init__(self, work_dir, name, kind, **values):
        self.prefix = os.path.join(work_dir, name)
        os.makedirs(self.prefix, exist_ok=True)
        super().__init__(os.path.join(self.prefix, "stderr.log"))
        self.port = free_port()
        values = {"LISTEN": f"127.0.0.1:{self.port}", "PORT": self.port, "PREFIX": self.prefix, **values}
        server = self._fill(os.path.join(ROOT, "deploy", "nginx", f"{kind}.conf"), values)
        server_path = os.path.join(self.prefix, "server.conf")
        with open(server_path, "w") as f:
            f.write(server)
        main = self._fill(os.path.join(ROOT, "deploy", "nginx", "nginx-main.conf"), {
            "PREFIX": self.prefix, "SERVER": server_path,
            "USER": "user root;" if os.getuid() == 0 else "",
            "MODULES": f"load_module {PURGE_MODULE};" if kind == "edge" else ""})
        self.conf = os.path.join(self.prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(main)

    _fill = staticmethod(lambda path, values: fill(path, values))

    def agent_args(self):
        return ["--cache", "nginx", "--cache-url", self.url, "--nginx-cache-dir", self.cache_dir,
                *self.https_args()]

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def purge_url(self):
        """The edge's loopback purge server (cache-purge module), for agents without the index."""
        return f"http://127.0.0.1:{self.purge_port}"

    def start(self):
        self.spawn([NGINX_BIN, "-p", self.prefix, "-c", self.conf, "-g", "daemon off;"])
        wait_listening(self, self.port, "nginx", lambda: open(os.path.join(self.prefix, "error.log")).read())
        return self

    def stop(self):
        if self.running():
            self.proc.send_signal(signal.SIGQUIT)
        return super().stop()


# The origin also listens here: Traffic Server will not use a parent on an address of its own.
ORIGIN_ALIAS = "127.0.0.2"


def start_origin(work_dir, files, extra=""):
    """An origin nginx serving files ({path: bytes}) from work_dir/origin-root. The files are
    dated a day back, as published content is: caches that guess a lifetime from Last-Modified
    (Squid) would otherwise treat content modified a second ago as stale within a second."""
    root = os.path.join(work_dir, "origin-root")
    published = time.time() - 86400
    for path, content in files.items():
        full = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(content)
        os.utime(full, (published, published))
    return Nginx(work_dir, "origin", "origin", ROOT=root, ORIGIN_ALIAS=ORIGIN_ALIAS, EXTRA=extra).start()


def start_edge(work_dir, name, origin):
    """An edge cache nginx in front of origin, with its cache in work_dir/<name>/cache, serving
    HTTP on .port and HTTPS on .tls_port, and its purge server on .purge_port."""
    cache_dir = os.path.join(work_dir, name, "cache")
    os.makedirs(cache_dir, exist_ok=True)
    cert, key = edge_certificate(work_dir)
    tls_port, purge_port = free_port(), free_port()
    edge = Nginx(work_dir, name, "edge", CACHE_DIR=cache_dir, ORIGIN=f"127.0.0.1:{origin.port}",
                 TLS_LISTEN=f"127.0.0.1:{tls_port}", TLS_CERT=cert, TLS_KEY=key,
                 PURGE_LISTEN=f"127.0.0.1:{purge_port}")
    edge.cache_dir, edge.tls_port, edge.purge_port = cache_dir, tls_port, purge_port
    return edge.start()


def start_tls_terminator(work_dir, name, cache):
    """nginx ending TLS in front of cache (deploy/nginx/tls-terminator.conf), as HTTPS reaches a
    Varnish, Traffic Server or Squid edge; sets cache.tls_port."""
    cert, key = edge_certificate(work_dir)
    terminator = Nginx(work_dir, f"{name}-tls", "tls-terminator", CACHE=f"127.0.0.1:{cache.port}",
                       TLS_CERT=cert, TLS_KEY=key)
    cache.tls_port = terminator.port
    cache.companions.append(terminator.start())
    return terminator


class Varnish(Process):
    """varnishd running deploy/varnish/edge.vcl in front of origin, storing in memory."""

    def __init__(self, work_dir, name, origin, storage="64m"):
        self.prefix = os.path.join(work_dir, name)
        os.makedirs(self.prefix, exist_ok=True)
        open_to_dropped_users(work_dir, self.prefix)
        super().__init__(os.path.join(self.prefix, "stderr.log"))
        self.port = free_port()
        self.storage = storage
        self.vcl = os.path.join(self.prefix, "edge.vcl")
        with open(self.vcl, "w") as f:
            f.write(fill(os.path.join(ROOT, "deploy", "varnish", "edge.vcl"),
                         {"ORIGIN_HOST": "127.0.0.1", "ORIGIN_PORT": origin.port}))

    url = property(lambda self: f"http://127.0.0.1:{self.port}")

    def agent_args(self):
        return ["--cache", "varnish", "--cache-url", self.url, *self.https_args()]

    def start(self):
        self.spawn([VARNISHD_BIN, "-F", "-n", os.path.join(self.prefix, "varnish"), "-a",
                    f"127.0.0.1:{self.port}", "-f", self.vcl, "-s", f"malloc,{self.storage}", "-T", "none",
                    # as deploy/varnish/edge.vcl asks, for tag headers over 8 KB
                    "-p", "http_resp_hdr_len=65536", "-p", "http_resp_size=98304",
                    "-p", "workspace_backend=131072"])
        wait_listening(self, self.port, "varnishd")
        return self


class Squid(Process):
    """squid running deploy/squid/squid.conf in front of origin."""

    def __init__(self, work_dir, name, origin):
        self.prefix = os.path.join(work_dir, name)
        os.makedirs(self.prefix, exist_ok=True)
        open_to_dropped_users(work_dir, self.prefix)
        super().__init__(os.path.join(self.prefix, "stderr.log"))
        self.port = free_port()
        self.conf = os.path.join(self.prefix, "squid.conf")
        with open(self.conf, "w") as f:
            f.write(fill(os.path.join(ROOT, "deploy", "squid", "squid.conf"), {
                "LISTEN": f"127.0.0.1:{self.port}", "ORIGIN_HOST": "127.0.0.1",
                "ORIGIN_PORT": origin.port, "PREFIX": self.prefix}))

    url = property(lambda self: f"http://127.0.0.1:{self.port}")

    def agent_args(self):
        return ["--cache", "squid", "--cache-url", self.url, *self.https_args()]

    def start(self):
        self.spawn([SQUID_BIN, "-N", "-f", self.conf])
        wait_listening(self, self.port, "squid", lambda: open(os.path.join(self.prefix, "cache.log")).read())
        return self


class TrafficServer(Process):
    """Apache Traffic Server (traffic_manager and its traffic_server) running the configs in
    deploy/ats/ from a runroot of its own, in front of origin."""

    DIRS = ("etc", "cache", "var", "run", "log")

    def __init__(self, work_dir, name, origin):
        self.prefix = os.path.join(work_dir, name)
        for sub in self.DIRS:
            os.makedirs(os.path.join(self.prefix, sub), exist_ok=True)
        super().__init__(os.path.join(self.prefix, "stderr.log"))
        self.port = free_port()
        self.rules_file = os.path.join(self.prefix, "etc", "revalidate.rules")
        self.state_file = os.path.join(self.prefix, "var", "revalidate.state")
        open(self.rules_file, "a").close()
        self.runroot = os.path.join(self.prefix, "runroot.yaml")
        dirs = {f"{sub}dir": os.path.join(self.prefix, sub) for sub in ("log", "cache")}
        with open(self.runroot, "w") as f:
            f.write(f"prefix: {self.prefix}\nexec_prefix: /usr\nbindir: /usr/bin\nsbindir: /usr/bin\n"
                    f"sysconfdir: {self.prefix}/etc\ndatadir: {self.prefix}/cache\n"
                    f"includedir: /usr/include\nlibdir: /usr/lib/trafficserver\n"
                    f"libexecdir: /usr/lib/trafficserver/modules\nlocalstatedir: {self.prefix}/var\n"
                    f"runtimedir: {self.prefix}/run\nlogdir: {dirs['logdir']}\ncachedir: {dirs['cachedir']}\n")
        values = {"PORT": f"{self.port}:ip-in=127.0.0.1", "USER": "#-1",
                  "ORIGIN": f"{ORIGIN_ALIAS}:{origin.port}", "RULES_FILE": self.rules_file,
                  "STATE_FILE": self.state_file, "CACHE_DIR": os.path.join(self.prefix, "cache")}
        deploy = os.path.join(ROOT, "deploy", "ats")
        for conf in os.listdir(deploy):
            with open(os.path.join(self.prefix, "etc", conf), "w") as f:
                f.write(fill(os.path.join(deploy, conf), values))

    url = property(lambda self: f"http://127.0.0.1:{self.port}")

    def reload_command(self):
        return f"traffic_ctl --run-root={self.runroot} config reload"

    def agent_args(self):
        return ["--cache", "ats", "--cache-url", self.url, "--ats-rules-file", self.rules_file,
                "--ats-state-file", self.state_file, "--ats-reload-command", self.reload_command(),
                *self.https_args()]

    def start(self):
        self.spawn([TRAFFIC_MANAGER_BIN, f"--run-root={self.runroot}"])
        wait_listening(self, self.port, "traffic_server",
                       lambda: open(os.path.join(self.prefix, "log", "diags.log")).read())

        # traffic_manager binds the port before its traffic_server is ready to answer on it.
        def answering():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/", headers={"Host": "ready.invalid"})
                conn.getresponse().read()
                conn.close()
                return True
            except (OSError, http.client.HTTPException):
                return False
        wait_until(answering, timeout=30, interval=0.1, what=f"traffic_server answering on {self.port}")
        return self

    def stop(self):
        code = super().stop()
        # traffic_manager stops its traffic_server; make sure none outlives the test.
        subprocess.run(["pkill", "-f", f"traffic_server.*{self.runroot}"], check=False)
        return code


def start_cache(kind, work_dir, name, origin):
    """An edge cache of kind nginx, varnish, squid or ats in front of origin, running its deploy/
    config, in work_dir/<name>."""
    if kind == "nginx":
        return start_edge(work_dir, name, origin)
    cache = {"varnish": Varnish, "squid": Squid, "ats": TrafficServer}[kind](work_dir, name, origin).start()
    start_tls_terminator(work_dir, name, cache)
    return cache


def fetch(cache, url, headers=None):
    """GETs url's path through cache with url's Host (an https:// URL through the cache's HTTPS
    entry point), as a visitor would; returns (status, cache status, body). The cache status is
    X-Cache-Status (nginx, and Varnish and ATS as deploy/ configures them) or the first word of
    X-Cache (Squid's "HIT from host")."""
    scheme, scheme_rest = url.split("://", 1)
    host, _, path = scheme_rest.partition("/")
    if scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", cache.tls_port, timeout=10, context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", cache.port, timeout=10)
    # Only the headers given: no Accept-Encoding unless asked for, like the agent's own requests
    # (each Accept-Encoding value selects another Vary variant).
    conn.putrequest("GET", "/" + path, skip_host=True, skip_accept_encoding=True)
    for name, value in {"Host": host, **(headers or {})}.items():
        conn.putheader(name, value)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    status = response.getheader("X-Cache-Status") or (response.getheader("X-Cache") or "").split(" ")[0]
    return response.status, status or None, body


def warm(cache, url, headers=None):
    """Fetches url through cache until it is a HIT (ATS and Squid store asynchronously); a
    timeout names what the cache last answered."""
    last = []

    def cached():
        last[:] = fetch(cache, url, headers)
        return last[1] == "HIT"
    try:
        wait_until(cached, timeout=10, interval=0.1)
    except TimeoutError:
        status, cache_status, body = last
        raise TimeoutError(f"{url} {headers or ''} not cached: the cache last answered {status} "
                           f"{cache_status} {body[:200]!r}") from None


class FaultProxy:
    """An HTTP proxy in front of a cache that fails on purpose: answers `fail_status` to a share
    `fail_ratio` of requests, or drops the connection for a share `drop_ratio`, and forwards the
    rest after `delay_s`. Counts what it did, and keeps what each path got (`answers`). Runs in
    a thread of the test process."""

    def __init__(self, upstream, fail_ratio=0.0, fail_status=503, drop_ratio=0.0, delay_s=0.0, seed=7,
                 port=None):
        """port: the upstream's port to forward to (default upstream.port; an nginx edge's
        purge_port to put the proxy in front of its purges)."""
        import http.server
        import random
        import threading
        self.upstream = upstream
        self.upstream_port = port or upstream.port
        self.fail_ratio, self.fail_status, self.drop_ratio = fail_ratio, fail_status, drop_ratio
        self.counts = {"forwarded": 0, "failed": 0, "dropped": 0, "received": 0}
        self.answers = {}  # path -> what it got, in order: its status, or "dropped"
        self.delay_s = delay_s
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with proxy._lock:
                    roll = proxy._random.random()
                    proxy.counts["received"] += 1
                time.sleep(proxy.delay_s)
                if roll < proxy.drop_ratio:
                    with proxy._lock:
                        proxy.counts["dropped"] += 1
                        proxy.answers.setdefault(self.path, []).append("dropped")
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if roll < proxy.drop_ratio + proxy.fail_ratio:
                    with proxy._lock:
                        proxy.counts["failed"] += 1
                        proxy.answers.setdefault(self.path, []).append(proxy.fail_status)
                    self.send_response(proxy.fail_status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=10)
                conn.request("GET", self.path, headers={k: v for k, v in self.headers.items()})
                response = conn.getresponse()
                body = response.read()
                conn.close()
                with proxy._lock:
                    proxy.counts["forwarded"] += 1
                    proxy.answers.setdefault(self.path, []).append(response.status)
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        return 0
