"""A real OCI registry for tests: Debian's docker-registry on 127.0.0.1, a Docker token service, a push.

The token service signs ES256 JWTs with a key whose self-signed certificate is the registry's
rootcertbundle, and sends that certificate in the token's `x5c` header, which is how the registry
finds the key to verify with.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import io
import json
import secrets
import shutil
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import bcrypt
import httpx
import jwt
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from serve_app.embedded import free_port
from tests.helpers import wait_for

DEBIAN_BINARY = Path("/usr/bin/docker-registry")
INSTALL_HINT = "install it with `apt-get install -y docker-registry` (.ci/run does this on CI)"

MEDIA_TYPES = {
    "oci": {
        "manifest": "application/vnd.oci.image.manifest.v1+json",
        "config": "application/vnd.oci.image.config.v1+json",
        "layer": "application/vnd.oci.image.layer.v1.tar+gzip",
    },
    "docker": {
        "manifest": "application/vnd.docker.distribution.manifest.v2+json",
        "config": "application/vnd.docker.container.image.v1+json",
        "layer": "application/vnd.docker.image.rootfs.diff.tar.gzip",
    },
}
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def basic_authorization(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def registry_binary() -> str:
    """The docker-registry executable, or a test failure that says how to install it (never a skip)."""
    found = shutil.which("docker-registry") or (str(DEBIAN_BINARY) if DEBIAN_BINARY.exists() else None)
    if found is None:
        pytest.fail(f"docker-registry is not installed: {INSTALL_HINT}", pytrace=False)
    return found


@dataclass
class RunningRegistry:
    """One docker-registry process on 127.0.0.1 with its own storage and port."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_registry(root: Path, auth: dict[str, Any] | None = None) -> RunningRegistry:
    """Start docker-registry serving `root` on a free loopback port; return once /v2/ answers."""
    binary = registry_binary()
    port = free_port()
    settings: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root / "storage")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }
    if auth:
        settings["auth"] = auth
    config_path = root / "config.yml"
    config_path.write_text(yaml.safe_dump(settings))
    log_path = root / "registry.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([binary, "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT)
    registry = RunningRegistry(f"http://127.0.0.1:{port}", process, log_path)

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"docker-registry exited with {process.returncode}:\n{registry.log_tail()}")
        try:
            # 401 is an answer too: a registry with auth challenges even /v2/.
            return httpx.get(registry.url + "/v2/", timeout=1).status_code in (200, 401)
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, timeout=30, what=f"docker-registry on {registry.url}", interval=0.05)
    except BaseException:
        registry.stop()
        raise
    return registry


def write_htpasswd(path: Path, username: str, password: str) -> Path:
    # Cost 4, bcrypt's minimum: the registry checks the hash on every request.
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    path.write_text(f"{username}:{hashed}\n")
    return path


def _self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "binder-actors test token issuer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


@dataclass
class TokenService:
    """A Docker token service on 127.0.0.1: Basic credentials in, a signed JWT for the asked scope out."""

    username: str
    password: str
    issuer: str = "binder-actors-tests"
    service: str = "test-registry"
    lifetime: int = 300
    fail_next: int = 0  # answer this many requests with 503 first (to prove the client retries)
    requests: list[str] = field(default_factory=list)  # the scope of every request, answered or not
    issued: list[str] = field(default_factory=list)  # every token handed out

    def __post_init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.certificate = _self_signed(self._key)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def write_root_bundle(self, path: Path) -> Path:
        path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        return path

    def registry_auth(self, root_bundle: Path) -> dict[str, Any]:
        """The registry's `auth:` section that trusts this service."""
        return {
            "token": {
                "realm": self.url,
                "service": self.service,
                "issuer": self.issuer,
                "rootcertbundle": str(root_bundle),
            }
        }

    def mint(self, scope: str, subject: str = "tests") -> str:
        """A token granting every action `scope` asks for (space-separated `type:name:actions`)."""
        now = int(time.time())
        access = []
        for item in scope.split():
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "iat": now,
            "nbf": now - 5,
            "exp": now + self.lifetime,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        token = jwt.encode(claims, self._key, algorithm="ES256", headers={"x5c": [base64.b64encode(der).decode()]})
        self.issued.append(token)
        return token

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, authorization: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        scope = " ".join(query.get("scope", []))
        with self._lock:
            self.requests.append(scope)
            if self.fail_next > 0:
                self.fail_next -= 1
                return 503, {"error": "try again"}
        if authorization != basic_authorization(self.username, self.password):
            return 401, {"error": "bad credentials"}
        if query.get("service") != [self.service]:
            return 400, {"error": "unknown service"}
        return 200, {"token": self.mint(scope), "expires_in": self.lifetime}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                query = parse_qs(urlsplit(self.path).query)
                status, body = service._answer(self.headers.get("Authorization", ""), query)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the http.server API)
                pass  # the tests' output stays readable

        return Handler


def _layer() -> bytes:
    """A gzipped tar with one file: a real, if tiny, image layer."""
    content = b"hello from binder-actors\n"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        entry = tarfile.TarInfo("hello.txt")
        entry.size = len(content)
        archive.addfile(entry, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _check(response: httpx.Response, expected: int, what: str) -> httpx.Response:
    assert response.status_code == expected, f"{what}: HTTP {response.status_code} {response.text}"
    return response


def _upload_blob(client: httpx.Client, repository: str, blob: bytes) -> dict[str, Any]:
    """The distribution API's two-step upload: POST opens a session, PUT with the digest closes it."""
    opened = _check(client.post(f"/v2/{repository}/blobs/uploads/"), 202, "open blob upload")
    location = httpx.URL(opened.headers["Location"])
    target = client.base_url.join(location).copy_merge_params({"digest": _digest(blob)})
    _check(client.put(target, content=blob, headers={"Content-Type": "application/octet-stream"}), 201, "upload blob")
    return {"digest": _digest(blob), "size": len(blob)}


def _put_manifest(client: httpx.Client, repository: str, tag: str, manifest: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(manifest).encode()
    headers = {"Content-Type": manifest["mediaType"]}
    _check(client.put(f"/v2/{repository}/manifests/{tag}", content=body, headers=headers), 201, "put manifest")
    return {"mediaType": manifest["mediaType"], "digest": _digest(body), "size": len(body)}


def push_image(
    url: str,
    repository: str,
    tag: str,
    *,
    kind: Literal["oci", "docker"] = "oci",
    authorization: str = "",
    as_index: bool = False,
) -> None:
    """Push a complete linux/amd64 image (config + one layer), optionally tagged through an OCI index."""
    types = MEDIA_TYPES[kind]
    layer = _layer()
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [_digest(gzip.decompress(layer))]},
        "config": {"Cmd": ["cat", "/hello.txt"]},
    }
    headers = {"Authorization": authorization} if authorization else {}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        config_ref = _upload_blob(client, repository, json.dumps(image_config).encode())
        layer_ref = _upload_blob(client, repository, layer)
        manifest = {
            "schemaVersion": 2,
            "mediaType": types["manifest"],
            "config": {"mediaType": types["config"], **config_ref},
            "layers": [{"mediaType": types["layer"], **layer_ref}],
        }
        if not as_index:
            _put_manifest(client, repository, tag, manifest)
            return
        # The platform manifest goes in by digest only; the tag names the index alone.
        entry = _put_manifest(client, repository, _digest(json.dumps(manifest).encode()), manifest)
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{**entry, "platform": {"architecture": "amd64", "os": "linux"}}],
        }
        _put_manifest(client, repository, tag, index)
