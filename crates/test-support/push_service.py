"""A push service stand-in for Herald's Web Push tests.

It does what a browser vendor's push service does with a push, with an
implementation independent of Herald's (`cryptography` and `http_ece`, not
RustCrypto): it checks the VAPID authorization (RFC 8292: an ES256 JWT whose
`aud` is this service's origin, `exp` in the next 24 hours, a `sub` contact,
signed by the key in `k`), the `TTL`, `Urgency` and `Topic` headers (RFC 8030
§5.2-5.4) and `Content-Encoding: aes128gcm`, and decrypts the body (RFC 8291)
with the subscription's private key, as the browser would. Every push is
recorded, valid or not; a request whose connection dropped before its body
arrived is not a push, and is not recorded.

Control (JSON over HTTP, for the tests):
  POST /subscriptions        -> a new subscription, as PushSubscription.toJSON();
                                with {"count": n}, a list of n (sharing one key pair)
  POST /push/{id}            <- a push from Herald
  GET  /received             -> every push received: {sub, at, ok, error?, payload, vapid,
                                 vapid_key, headers: {TTL, Urgency, Topic, Content-Encoding}}
  GET  /count                -> {"received": n}: how many pushes /received has (cheap to poll)
  GET  /connections          -> {"push": n}: connections that carried a push and are open
  POST /mode                 <- {"statuses": [500, 429], "retry_after": 1, "gone": ["id"],
                                 "delay": 0.05}: the next pushes are answered with these
                                 statuses in turn (then 201), with Retry-After; pushes to
                                 "gone" subscriptions get 410 (or, with "gone": {"id": 404},
                                 the status given); each answer waits "delay" s

Usage: python push_service.py  (prints the port it listens on, then serves)
"""

import base64
import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.subscriptions = {}  # id -> (private key, auth)
        self.received = []
        self.statuses = []
        self.retry_after = None
        self.gone = {}  # id -> status
        self.delay = 0.0
        self.push_connections = 0


STATE = State()

URGENCIES = ("very-low", "low", "normal", "high")
# RFC 8030 §5.4: a topic is at most 32 characters of the URL-safe base64 alphabet.
TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")


def verify_vapid(header, origin):
    """The claims of a valid `vapid t=…, k=…` authorization; raises otherwise."""
    if not header.startswith("vapid "):
        raise ValueError(f"not a vapid authorization: {header[:20]!r}")
    params = dict(p.strip().split("=", 1) for p in header[len("vapid "):].split(","))
    token, k = params["t"], params["k"]
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(k))
    head_b64, claims_b64, sig_b64 = token.split(".")
    head = json.loads(b64url_decode(head_b64))
    if head.get("alg") != "ES256":
        raise ValueError(f"alg {head.get('alg')!r}, not ES256")
    sig = b64url_decode(sig_b64)
    if len(sig) != 64:
        raise ValueError("an ES256 signature is 64 bytes")
    der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        public.verify(der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("the VAPID signature does not verify")
    claims = json.loads(b64url_decode(claims_b64))
    now = time.time()
    if claims.get("aud") != origin:
        raise ValueError(f"aud {claims.get('aud')!r}, not {origin!r}")
    if not (now < claims.get("exp", 0) <= now + 24 * 3600 + 60):
        raise ValueError(f"exp {claims.get('exp')} is not within the next 24 hours")
    if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
        raise ValueError(f"sub {claims.get('sub')!r} is not a mailto: or https: contact")
    return claims, k


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An answer is written in two sends (head, then body); with Nagle's
    # algorithm the body waits for the client's delayed ACK, ~40 ms per push
    # on a kept-alive connection, which a push service does not add.
    disable_nagle_algorithm = True

    def log_message(self, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        self.carried_push = False

    def finish(self):
        try:
            super().finish()
        except OSError:  # the client is gone (a worker killed mid-send)
            pass
        if self.carried_push:
            with STATE.lock:
                STATE.push_connections -= 1

    def handle(self):
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):  # the client is gone
            pass

    def body(self):
        """The body, or None when the connection dropped before all of it came."""
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        return data if len(data) == n else None

    def answer(self, status, obj=None, headers=None):
        data = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/received":
            with STATE.lock:
                return self.answer(200, list(STATE.received))
        if self.path == "/count":
            with STATE.lock:
                return self.answer(200, {"received": len(STATE.received)})
        if self.path == "/connections":
            with STATE.lock:
                return self.answer(200, {"push": STATE.push_connections})
        self.answer(404, {"error": "no such path"})

    def do_POST(self):
        body = self.body()
        if body is None:  # the client went away mid-request: nothing to answer
            self.close_connection = True
            return
        if self.path == "/subscriptions":
            count = json.loads(body or b"{}").get("count")
            private = ec.generate_private_key(ec.SECP256R1())
            auth = uuid.uuid4().bytes
            point = private.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            port = self.server.server_address[1]
            subs = []
            for _ in range(1 if count is None else int(count)):
                sid = uuid.uuid4().hex
                with STATE.lock:
                    STATE.subscriptions[sid] = (private, auth)
                subs.append({
                    "endpoint": f"http://127.0.0.1:{port}/push/{sid}",
                    "expirationTime": None,
                    "keys": {"p256dh": b64url(point), "auth": b64url(auth)},
                })
            return self.answer(201, subs[0] if count is None else subs)
        if self.path == "/mode":
            mode = json.loads(body or b"{}")
            gone = mode.get("gone", [])
            with STATE.lock:
                STATE.statuses = list(mode.get("statuses", []))
                STATE.retry_after = mode.get("retry_after")
                STATE.gone = dict(gone) if isinstance(gone, dict) else {sid: 410 for sid in gone}
                STATE.delay = float(mode.get("delay", 0.0))
            return self.answer(200, {"ok": True})
        if self.path.startswith("/push/"):
            return self.push(self.path[len("/push/"):], body)
        self.answer(404, {"error": "no such path"})

    def push(self, sid, body):
        port = self.server.server_address[1]
        if not self.carried_push:
            self.carried_push = True
            with STATE.lock:
                STATE.push_connections += 1
        record = {"sub": sid, "at": time.time(), "headers": {
            k: self.headers.get(k) for k in ("TTL", "Urgency", "Topic", "Content-Encoding")
        }}
        try:
            with STATE.lock:
                if sid not in STATE.subscriptions:
                    raise KeyError(f"no subscription {sid}")
                private, auth = STATE.subscriptions[sid]
            if self.headers.get("Content-Encoding") != "aes128gcm":
                raise ValueError("Content-Encoding must be aes128gcm")
            ttl = self.headers.get("TTL", "")
            if not ttl.isdigit():
                raise ValueError(f"TTL {ttl!r}: a TTL header of non-negative seconds is required")
            urgency = self.headers.get("Urgency")
            if urgency is not None and urgency not in URGENCIES:
                raise ValueError(f"Urgency {urgency!r} is not one of {URGENCIES}")
            topic = self.headers.get("Topic")
            if topic is not None and not TOPIC.fullmatch(topic):
                raise ValueError(f"Topic {topic!r}: at most 32 characters of the base64url alphabet")
            if len(body) > 4096:
                raise ValueError(f"{len(body)} bytes: more than 4096")
            claims, k = verify_vapid(self.headers.get("Authorization", ""), f"http://127.0.0.1:{port}")
            plain = http_ece.decrypt(body, private_key=private, auth_secret=auth, version="aes128gcm")
            record.update(ok=True, payload=json.loads(plain), vapid=claims, vapid_key=k)
        except Exception as e:  # recorded for the test to see
            record.update(ok=False, error=f"{type(e).__name__}: {e}")
        with STATE.lock:
            STATE.received.append(record)
            delay = STATE.delay
            if sid in STATE.gone:
                status = STATE.gone[sid]
            elif STATE.statuses:
                status = STATE.statuses.pop(0)
            else:
                status = 201
            retry_after = STATE.retry_after
        if delay:
            time.sleep(delay)
        if not record["ok"]:
            status = 400
        headers = {"Retry-After": str(retry_after)} if status in (429, 500, 503) and retry_after is not None else {}
        self.answer(status, {"status": status}, headers)


class Server(ThreadingHTTPServer):
    # A worker opens HERALD_PUSH_CONCURRENCY connections at once; the default
    # backlog (5) drops their SYNs, and each dropped one waits a second.
    request_queue_size = 1024


def main():
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
