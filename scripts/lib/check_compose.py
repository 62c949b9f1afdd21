"""Validates docker-compose.yml against the topology Herald documents.

Run by scripts/check-compose (part of scripts/test). No Docker engine is
needed: the file is parsed and checked; `docker compose config` runs too
when a Docker client with the compose plugin exists.
"""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
errors: list[str] = []


def check(cond: bool, message: str) -> None:
    if not cond:
        errors.append(message)


compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
services = compose.get("services", {})
for name in ["postgres", "redis", "api", "worker", "gateway1", "gateway2", "nginx"]:
    check(name in services, f"service {name} is missing")

config_rs = (ROOT / "crates/platform/src/config.rs").read_text()
known = set(re.findall(r'"(HERALD_[A-Z0-9_]+)"', config_rs))
commands = {"api": "herald-api", "worker": "herald-worker", "gateway1": "herald-gateway", "gateway2": "herald-gateway"}
for name, binary in commands.items():
    svc = services.get(name, {})
    check(svc.get("command", [None])[0] == binary, f"{name} must run {binary}")
    check("healthcheck" in svc, f"{name} needs a healthcheck")
    env = svc.get("environment", {})
    for var in env:
        if var.startswith("HERALD_"):
            check(var in known, f"{name}: {var} is not a setting Herald reads")
    check(env.get("HERALD_DATABASE_URL", "").startswith("postgres://"), f"{name}: HERALD_DATABASE_URL")
    check(env.get("HERALD_REDIS_URL", "").startswith("redis://"), f"{name}: HERALD_REDIS_URL")
    deps = svc.get("depends_on", {})
    check("postgres" in deps or "api" in deps, f"{name} must wait for its dependencies")
for name in ["gateway1", "gateway2"]:
    env = services.get(name, {}).get("environment", {})
    check(env.get("HERALD_GATEWAY_ADDR", "").startswith("0.0.0.0:"), f"{name} must listen on 0.0.0.0")
for name in ["postgres", "redis"]:
    check("healthcheck" in services.get(name, {}), f"{name} needs a healthcheck")

nginx_text = (ROOT / "deploy/nginx.conf").read_text()
nginx = "\n".join(line.split("#", 1)[0] for line in nginx_text.splitlines())  # directives only
check(not re.search(r"\b(ip_hash|hash|sticky)\b", nginx), "nginx must not pin clients to a gateway")
for upstream in ["gateway1", "gateway2"]:
    check(upstream in nginx, f"nginx must balance over {upstream}")
check("proxy_buffering off" in nginx, "nginx must not buffer event streams")

# Every nginx configuration we ship or test with: a gateway is never marked down by
# nginx's passive checks. A gateway that failed one request stays down until a request
# sent to it later *ends* (a stream: hours), so a crash followed by a rolling restart
# would leave no gateway nginx routes to (502 "no live upstreams" for every new stream).
for conf in ["deploy/nginx.conf", "deploy/nginx-local.conf.template", "deploy/nginx-fault.conf.template"]:
    text = "\n".join(line.split("#", 1)[0] for line in (ROOT / conf).read_text().splitlines())
    block = re.search(r"upstream\s+herald_gateway\s*\{(.*?)^\s*\}", text, re.S | re.M)
    check(block is not None, f"{conf}: no upstream herald_gateway")
    servers = re.findall(r"^\s*server\s+([^;]*);", block.group(1) if block else "", re.M)
    check(len(servers) >= 2, f"{conf}: herald_gateway needs at least two gateways")
    for server in servers:
        check("max_fails=0" in server.split(), f"{conf}: gateway '{server}' needs max_fails=0 (passive checks hold a streaming upstream down)")
    check(re.search(r"proxy_next_upstream\s+[^;]*\bhttp_503\b", text) is not None,
          f"{conf}: a draining gateway's 503 must be retried on another (proxy_next_upstream ... http_503)")

if errors:
    for e in errors:
        print(f"deploy: {e}", file=sys.stderr)
    sys.exit(1)
print(f"docker-compose.yml: {len(services)} services, topology as documented")
