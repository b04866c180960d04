"""A local test double of the Hugging Face Hub HTTP protocol, used to drive the *real* `huggingface_hub` client
(and `transformers` / `diffusers` / `datasets` on top of it) against 127.0.0.1 in tests.

Only the stdlib is used. Repos live in memory (per repo: branches and a dict of commits, each commit mapping
path -> (sha256, size, git oid, lfs?)); file contents are stored on disk under `root/blobs/<sha256>`. Written for
huggingface_hub 2.4 with Xet disabled (uploads go through the legacy LFS "basic" transfer).

Endpoints (`{t}` is models|datasets|spaces, `{p}` is "" or "datasets/" / "spaces/", `{repo}` is owner/name):

    GET    /api/whoami-v2                              POST /api/repos/create        DELETE /api/repos/delete
    POST   /api/validate-yaml                          GET  /api/agent-harnesses
    GET    /api/{t}/{repo}[/revision/{rev}]            repo info (`sha`, `siblings`; sizes/lfs with ?blobs=1)
    GET    /api/{t}/{repo}/tree/{rev}[/{path}]         ?recursive=&expand= (expand adds lastCommit)
    POST   /api/{t}/{repo}/paths-info/{rev}            form or json `paths`
    GET    /api/{t}/{repo}/refs                        GET  /api/{t}/{repo}/commits/{rev}
    POST   /api/{t}/{repo}/branch/{branch}             POST /api/{t}/{repo}/preupload/{rev}
    POST   /api/{t}/{repo}/commit/{rev}                NDJSON: header, file, lfsFile, deletedFile, deletedFolder
    POST   /{p}{repo}.git/info/lfs/objects/batch       -> upload href `PUT /_lfs/{sha256}` (+ `POST .../verify`)
    HEAD|GET /{p}{repo}/resolve/{rev}/{path}           X-Repo-Commit, ETag, X-Linked-Etag/-Size, Range (206)

Errors carry `X-Error-Code` (RepoNotFound / RevisionNotFound / EntryNotFound) and a json `{"error": ...}` body, as
the client maps them to its exceptions. Anything else answers 404 and is printed to stderr and kept in
`LocalHub.unknown`, so protocol gaps are visible. Fault injection: `fail_next_lfs_uploads`, `fail_next_commits`,
`fail_next_downloads` drop the connection (socket closed without, or in the middle of, a response).

Usage from any test file (the `local_hub` fixture below does exactly this)::

    with LocalHub(tmp_path / "hub", token="hf_test") as hub:
        hub_env(monkeypatch, hub, tmp_path)  # client now talks to hub.endpoint, online, no xet, cache in tmp_path
        ...
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

LFS_THRESHOLD = 10 * 1024 * 1024
LFS_SUFFIXES = (
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".h5", ".msgpack", ".npy", ".npz", ".pkl",
    ".parquet", ".arrow", ".mp4", ".avi", ".mkv", ".wav", ".mp3", ".flac", ".png", ".jpg", ".jpeg", ".zip",
    ".gz", ".tar", ".zst", ".mid", ".midi",
)  # fmt: skip
GITATTRIBUTES = b"".join(b"*%s filter=lfs diff=lfs merge=lfs -text\n" % s.encode() for s in LFS_SUFFIXES)
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
TYPES = {"models": "model", "datasets": "dataset", "spaces": "space", None: "model"}


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class _Drop(Exception):
    """Raised by a handler to close the connection without (the rest of) a response."""


class LocalHub:
    """A Hub server on 127.0.0.1:<free port>, started/stopped as a context manager (or `start()` / `stop()`).

    Inspection for tests: `requests` (list of (method, path)), `ranges` (Range headers of resolve GETs),
    `unknown` (unhandled "METHOD path"), `head(...)`, `history(...)`, `read(...)`, `file_info(...)`.
    """

    def __init__(self, root: str | Path, token: str = "hf_test", user: str = "tester"):
        self.root, self.token, self.user = Path(root), token, user
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        self.requests: list[tuple[str, str]] = []
        self.ranges: list[str] = []
        self.unknown: list[str] = []
        self._repos: dict[tuple[str, str], dict] = {}
        self._faults: dict[str, list] = {}
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> LocalHub:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            for conn in list(self._connections):  # end keep-alive connections (and their handler threads)
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._server = None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- fault injection ------------------------------------------------------------------------------------
    def fail_next_lfs_uploads(self, n: int, after_bytes: int = 64 * 1024) -> None:
        """The next `n` LFS PUTs read `after_bytes` of the body, then the socket is closed without a response."""
        self._faults["lfs"] = [n, {"after_bytes": after_bytes}]

    def fail_next_commits(self, n: int, after_apply: bool = False) -> None:
        """The next `n` commit calls drop the connection: before applying anything, or after (lost response)."""
        self._faults["commit"] = [n, {"after_apply": after_apply}]

    def fail_next_downloads(self, n: int, after_bytes: int = 0, truncate: bool = False) -> None:
        """The next `n` resolve GETs send the headers and `after_bytes` of the body, then drop the connection.
        With `truncate`, they instead announce and send only `after_bytes` bytes: a "complete" short response."""
        self._faults["download"] = [n, {"after_bytes": after_bytes, "truncate": truncate}]

    def _take_fault(self, kind: str) -> dict | None:
        with self._lock:
            fault = self._faults.get(kind)
            if not fault or fault[0] <= 0:
                return None
            fault[0] -= 1
            return fault[1]

    # -- inspection -----------------------------------------------------------------------------------------
    def head(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> str | None:
        repo = self._repos.get((repo_type, repo_id))
        return None if repo is None else self._resolve_rev(repo, revision)

    def history(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> list[dict]:
        repo = self._repos[(repo_type, repo_id)]
        sha, out = self._resolve_rev(repo, revision), []
        while sha is not None:
            out.append(repo["commits"][sha])
            sha = repo["commits"][sha]["parent"]
        return out

    def file_info(
        self, repo_id: str, path: str, revision: str = "main", repo_type: str = "model"
    ) -> dict | None:
        repo = self._repos[(repo_type, repo_id)]
        return repo["commits"][self._resolve_rev(repo, revision)]["files"].get(path)

    def read(self, repo_id: str, path: str, revision: str = "main", repo_type: str = "model") -> bytes:
        return self._blob(self.file_info(repo_id, path, revision, repo_type)["sha256"]).read_bytes()

    # -- storage --------------------------------------------------------------------------------------------
    def _blob(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256

    def _store(self, data: bytes) -> dict:
        sha = hashlib.sha256(data).hexdigest()
        if not self._blob(sha).exists():
            tmp = self.root / "tmp" / uuid.uuid4().hex
            tmp.write_bytes(data)
            os.replace(tmp, self._blob(sha))
        return {"sha256": sha, "size": len(data), "oid": git_oid(data), "lfs": False}

    def _new_repo(self, repo_type: str, repo_id: str, private: bool) -> dict:
        repo = {"type": repo_type, "id": repo_id, "private": private, "created": _now()}
        repo.update(branches={}, commits={})
        self._commit(repo, "main", {".gitattributes": self._store(GITATTRIBUTES)}, "initial commit", "")
        self._repos[(repo_type, repo_id)] = repo
        return repo

    def _commit(self, repo: dict, branch: str, files: dict, title: str, message: str) -> str:
        parent = repo["branches"].get(branch)
        seed = json.dumps([parent, title, sorted((p, f["oid"]) for p, f in files.items()), uuid.uuid4().hex])
        sha = hashlib.sha1(seed.encode()).hexdigest()
        commit = dict(id=sha, parent=parent, title=title, message=message, date=_now(), files=files)
        repo["commits"][sha] = commit
        repo["branches"][branch] = sha
        return sha

    @staticmethod
    def _resolve_rev(repo: dict, rev: str) -> str | None:
        rev = rev.removeprefix("refs/heads/")
        if rev in repo["branches"]:
            return repo["branches"][rev]
        matches = [sha for sha in repo["commits"] if len(rev) >= 7 and sha.startswith(rev.lower())]
        return matches[0] if len(matches) == 1 else None


def _entry(repo: dict, sha: str, path: str, files: dict, expand: bool = False) -> dict:
    """Tree / paths-info entry of a file or directory of commit `sha`."""
    f = files.get(path)
    if f is not None:
        entry = {"type": "file", "oid": f["oid"], "size": f["size"], "path": path}
        if f["lfs"]:
            pointer_size = len(lfs_pointer(f["sha256"], f["size"]))
            entry["lfs"] = {"oid": f["sha256"], "size": f["size"], "pointerSize": pointer_size}
        in_entry = lambda p: p == path  # noqa: E731
    else:
        children = sorted((p, f["oid"]) for p, f in files.items() if p.startswith(path + "/"))
        oid = hashlib.sha1(json.dumps(children).encode()).hexdigest()
        entry = {"type": "directory", "oid": oid, "size": 0, "path": path}
        in_entry = lambda p: p.startswith(path + "/")  # noqa: E731
    if expand:  # last commit that touched the entry
        while True:
            commit = repo["commits"][sha]
            parent = repo["commits"][commit["parent"]]["files"] if commit["parent"] else {}
            changed = {
                p for p in set(commit["files"]) | set(parent) if commit["files"].get(p) != parent.get(p)
            }
            if commit["parent"] is None or any(in_entry(p) for p in changed):
                entry["lastCommit"] = {"id": sha, "title": commit["title"], "date": commit["date"]}
                break
            sha = commit["parent"]
    return entry


T = r"/api/(?P<type>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)"
P = r"/(?:(?P<type>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)"
ROUTES = [
    ("GET", r"/api/whoami-v2", "whoami"),
    ("POST", r"/api/repos/create", "create_repo"),
    ("DELETE", r"/api/repos/delete", "delete_repo"),
    ("POST", r"/api/validate-yaml", "validate_yaml"),
    ("GET", r"/api/agent-harnesses", "agent_harnesses"),
    ("POST", T + r"/preupload/(?P<rev>[^/]+)", "preupload"),
    ("POST", T + r"/commit/(?P<rev>[^/]+)", "commit"),
    ("POST", T + r"/paths-info/(?P<rev>[^/]+)", "paths_info"),
    ("GET", T + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree"),
    ("GET", T + r"/refs", "refs"),
    ("GET", T + r"/commits/(?P<rev>[^/]+)", "commits"),
    ("POST", T + r"/branch/(?P<rev>[^/]+)", "create_branch"),
    ("GET", T + r"(?:/revision/(?P<rev>[^/]+))?", "repo_info"),
    ("POST", P + r"\.git/info/lfs/objects/batch", "lfs_batch"),
    ("PUT", r"/_lfs/(?P<oid>[0-9a-f]{64})", "lfs_put"),
    ("POST", r"/_lfs/(?P<oid>[0-9a-f]{64})/verify", "lfs_verify"),
    ("GET", P + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
    ("HEAD", P + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections

    def setup(self) -> None:
        super().setup()
        self.server.hub._connections.add(self.connection)

    def finish(self) -> None:
        self.server.hub._connections.discard(self.connection)
        super().finish()

    def log_message(self, *args) -> None:  # quiet; unknown routes are reported in `_dispatch`
        pass

    def do_GET(self):
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    # -- plumbing -------------------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        self.hub: LocalHub = self.server.hub
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        self.hub.requests.append((self.command, url.path))
        self.body = b"" if self.command == "PUT" else self._read_body()  # PUT bodies are streamed by lfs_put
        try:
            for method, pattern, name in ROUTES:
                m = re.fullmatch(pattern, url.path)
                if method == self.command and m:
                    args = {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
                    if "type" in m.groupdict():
                        args["type"] = TYPES[m.group("type")]
                    return getattr(self, name)(**args)
            self.hub.unknown.append(f"{self.command} {self.path}")
            print(f"LocalHub: unhandled {self.command} {self.path}", file=sys.stderr)
            raise HubError(404, f"LocalHub does not implement {self.command} {url.path}", "EntryNotFound")
        except HubError as e:
            self.close_connection = self.command == "PUT"  # its body may be unread
            headers = {"X-Error-Message": e.message.encode("ascii", "replace").decode(), **e.headers}
            if e.code:
                headers["X-Error-Code"] = e.code
            self._json({"error": e.message}, e.status, headers)
        except _Drop:
            self.close_connection = True

    def _body_chunks(self, limit: int | None = None):
        remaining = limit if limit is not None else float("inf")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while remaining > 0:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                chunk = self.rfile.read(size)
                self.rfile.readline()
                remaining -= len(chunk)
                yield chunk
        else:
            left = min(int(self.headers.get("Content-Length") or 0), remaining)
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 20))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    def _read_body(self) -> bytes:
        return b"".join(self._body_chunks())

    def _send(self, status: int, body: bytes, headers: dict | None = None, length: int | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _user(self, required: bool = False) -> str | None:
        auth = self.headers.get("Authorization")
        if auth is None:
            if required:
                raise HubError(401, "You must be authenticated to do this")
            return None
        if auth != f"Bearer {self.hub.token}":
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.hub.user

    def _repo(self, type: str, repo: str, write: bool = False) -> dict:
        user = self._user(required=write)
        found = self.hub._repos.get((type, repo))
        if found is None or (found["private"] and user is None):
            raise HubError(404, f"Repository not found: {PREFIX[type]}{repo}", "RepoNotFound")
        return found

    def _commit_of(self, repo: dict, rev: str) -> tuple[str, dict]:
        sha = self.hub._resolve_rev(repo, rev)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return sha, repo["commits"][sha]["files"]

    def _url(self, type: str, repo: str) -> str:
        return f"{self.hub.endpoint}/{PREFIX[type]}{repo}"

    # -- account / repos ------------------------------------------------------------------------------------
    def whoami(self) -> None:
        if self._user() is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        user = {"type": "user", "id": "0", "name": self.hub.user, "fullname": self.hub.user, "orgs": []}
        token = {"displayName": "test", "role": "write", "createdAt": _now()}
        self._json(user | {"auth": {"type": "access_token", "accessToken": token}})

    def create_repo(self) -> None:
        user, payload = self._user(required=True), json.loads(self.body)
        repo_id = f"{payload.get('organization') or user}/{payload['name']}"
        type = payload.get("type") or "model"
        with self.hub._lock:
            if (type, repo_id) in self.hub._repos:
                url = self._url(type, repo_id)
                return self._json({"error": f"You already created this {type} repo", "url": url}, 409)
            private = payload.get("visibility", "private" if payload.get("private") else "public") != "public"
            self.hub._new_repo(type, repo_id, private)
        self._json({"url": self._url(type, repo_id), "name": repo_id, "id": repo_id})

    def delete_repo(self) -> None:
        user, payload = self._user(required=True), json.loads(self.body)
        key = (payload.get("type") or "model", f"{payload.get('organization') or user}/{payload['name']}")
        with self.hub._lock:
            if self.hub._repos.pop(key, None) is None:
                raise HubError(404, f"Repository not found: {key[1]}", "RepoNotFound")
        self._json({})

    def validate_yaml(self) -> None:
        self._json({"errors": [], "warnings": []})

    def agent_harnesses(self) -> None:
        self._json({"standardEnvVars": [], "harnesses": {}})

    def repo_info(self, type: str, repo: str, rev: str = "main") -> None:
        found = self._repo(type, repo)
        sha, files = self._commit_of(found, rev)
        siblings = []
        for path in sorted(files):
            sibling = {"rfilename": path}
            if self.query.get("blobs", ["false"])[0].lower() in ("1", "true"):
                entry = _entry(found, sha, path, files)
                sibling |= {"size": entry["size"], "blobId": entry["oid"]}
                if "lfs" in entry:
                    lfs = entry["lfs"]
                    sibling["lfs"] = {
                        "size": lfs["size"],
                        "sha256": lfs["oid"],
                        "pointerSize": lfs["pointerSize"],
                    }
            siblings.append(sibling)
        info = {"id": repo, "_id": hashlib.md5(repo.encode()).hexdigest()[:24], "author": repo.split("/")[0]}
        info |= {"sha": sha, "private": found["private"], "gated": False, "disabled": False, "tags": []}
        info |= {"lastModified": found["commits"][sha]["date"], "createdAt": found["created"]}
        self._json(info | {"siblings": siblings, "downloads": 0, "likes": 0})

    def refs(self, type: str, repo: str) -> None:
        found = self._repo(type, repo)
        branches = [
            {"name": n, "ref": f"refs/heads/{n}", "targetCommit": s} for n, s in found["branches"].items()
        ]
        self._json({"branches": branches, "converts": [], "tags": [], "pullRequests": []})

    def commits(self, type: str, repo: str, rev: str) -> None:
        found = self._repo(type, repo)
        self._commit_of(found, rev)
        history = self.hub.history(repo, type, rev)
        authors = [{"user": self.hub.user}]
        self._json(
            [{k: c[k] for k in ("id", "title", "message", "date")} | {"authors": authors} for c in history]
        )

    def create_branch(self, type: str, repo: str, rev: str) -> None:
        found = self._repo(type, repo, write=True)
        start = (json.loads(self.body or b"{}") or {}).get("startingPoint") or "main"
        with self.hub._lock:
            if rev in found["branches"]:
                raise HubError(409, f"Branch {rev} already exists")
            found["branches"][rev] = self._commit_of(found, start)[0]
        self._json({})

    # -- listing --------------------------------------------------------------------------------------------
    def tree(self, type: str, repo: str, rev: str, path: str = "") -> None:
        found = self._repo(type, repo)
        sha, files = self._commit_of(found, rev)
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        expand = self.query.get("expand", ["false"])[0].lower() in ("1", "true")
        path = path.strip("/")
        prefix, paths = (path + "/" if path else ""), set()
        for p in files:
            if p.startswith(prefix):
                parts = p[len(prefix) :].split("/")
                depth = len(parts) if recursive else 1
                paths.update(prefix + "/".join(parts[:i]) for i in range(1, depth + 1))
        if path and not paths:
            raise HubError(404, f"{path} does not exist on {rev}", "EntryNotFound")
        self._json([_entry(found, sha, p, files, expand) for p in sorted(paths)])

    def paths_info(self, type: str, repo: str, rev: str) -> None:
        found = self._repo(type, repo)
        sha, files = self._commit_of(found, rev)
        if self.headers.get("Content-Type", "").startswith("application/json"):
            form = json.loads(self.body)
            paths, expand = form.get("paths", []), bool(form.get("expand"))
        else:
            form = parse_qs(self.body.decode())
            paths, expand = form.get("paths", []), form.get("expand", ["False"])[0].lower() in ("1", "true")
        dirs = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
        existing = [p.strip("/") for p in paths if p.strip("/") in files or p.strip("/") in dirs]
        self._json([_entry(found, sha, p, files, expand) for p in existing])

    # -- upload ---------------------------------------------------------------------------------------------
    def preupload(self, type: str, repo: str, rev: str) -> None:
        found = self._repo(type, repo, write=True)
        sha, files = self._commit_of(found, rev)
        out = []
        for f in json.loads(self.body)["files"]:
            sample = base64.b64decode(f.get("sample", ""))
            lfs = f["size"] >= LFS_THRESHOLD or f["path"].lower().endswith(LFS_SUFFIXES) or b"\0" in sample
            remote = files.get(f["path"])
            oid = None if remote is None else (remote["sha256"] if remote["lfs"] else remote["oid"])
            out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False})
            out[-1]["oid"] = oid
        self._json({"files": out, "commitOid": sha})

    def lfs_batch(self, repo: str, type: str = "model") -> None:
        self._repo(type, repo, write=True)
        payload = json.loads(self.body)
        if payload.get("operation") != "upload":
            raise HubError(400, "LocalHub only implements the LFS 'upload' operation")
        objects = []
        for obj in payload["objects"]:
            oid, size = obj["oid"], obj["size"]
            blob = self.hub._blob(oid)
            if not re.fullmatch(r"[0-9a-f]{64}", oid):
                objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "Invalid oid"}})
            elif blob.exists() and blob.stat().st_size == size:
                objects.append({"oid": oid, "size": size})  # already there: no actions
            else:
                href = f"{self.hub.endpoint}/_lfs/{oid}"
                actions = {"upload": {"href": href}, "verify": {"href": href + "/verify"}}
                objects.append({"oid": oid, "size": size, "authenticated": True, "actions": actions})
        self._json(
            {"transfer": "basic", "objects": objects},
            headers={"Content-Type": "application/vnd.git-lfs+json"},
        )

    def lfs_put(self, oid: str) -> None:
        fault = self.hub._take_fault("lfs")
        if fault is not None:
            for _ in self._body_chunks(limit=fault["after_bytes"]):
                pass
            raise _Drop
        tmp, digest, size = self.hub.root / "tmp" / uuid.uuid4().hex, hashlib.sha256(), 0
        with tmp.open("wb") as f:
            for chunk in self._body_chunks():
                digest.update(chunk)
                size += len(chunk)
                f.write(chunk)
        if digest.hexdigest() != oid:
            tmp.unlink()
            raise HubError(400, f"sha256 mismatch: expected {oid}, got {digest.hexdigest()} ({size} bytes)")
        os.replace(tmp, self.hub._blob(oid))
        self._send(200, b"", {"ETag": f'"{oid}"'})

    def lfs_verify(self, oid: str) -> None:
        payload, blob = json.loads(self.body), self.hub._blob(oid)
        if not blob.exists() or blob.stat().st_size != payload.get("size"):
            raise HubError(404, f"LFS object {oid} not found")
        self._json({})

    def commit(self, type: str, repo: str, rev: str) -> None:
        found = self._repo(type, repo, write=True)
        fault = self.hub._take_fault("commit")
        if fault is not None and not fault["after_apply"]:
            raise _Drop
        if self.query.get("create_pr"):
            raise HubError(400, "LocalHub does not implement pull requests (create_pr)")
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        with self.hub._lock:
            head, files = self._commit_of(found, rev)
            if rev.removeprefix("refs/heads/") not in found["branches"]:
                raise HubError(400, f"Can only commit to a branch, not {rev}")
            if header.get("parentCommit") not in (None, head):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(files)
            for line in lines:
                key, value = line["key"], line["value"]
                path = value.get("path", "").strip("/")
                if key == "file":
                    files[path] = self.hub._store(base64.b64decode(value["content"]))
                elif key == "lfsFile":
                    blob = self.hub._blob(value["oid"])
                    if not blob.exists() or value.get("size", blob.stat().st_size) != blob.stat().st_size:
                        raise HubError(422, f"LFS object {value['oid']} for {path} was never uploaded")
                    size = blob.stat().st_size
                    files[path] = {"sha256": value["oid"], "size": size, "lfs": True}
                    files[path]["oid"] = git_oid(lfs_pointer(value["oid"], size))
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif key == "deletedFolder":
                    gone = [p for p in files if p.startswith(path + "/")]
                    if not gone:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in gone:
                        del files[p]
                elif key != "header":
                    raise HubError(400, f"LocalHub does not implement commit operation {key!r}")
            branch = rev.removeprefix("refs/heads/")
            sha = self.hub._commit(found, branch, files, header["summary"], header.get("description", ""))
        if fault is not None:  # after_apply: the commit exists, the response is lost
            raise _Drop
        url = f"{self._url(type, repo)}/commit/{sha}"
        self._json({"success": True, "commitOid": sha, "commitUrl": url, "pullRequestUrl": None})

    # -- download -------------------------------------------------------------------------------------------
    def resolve(self, repo: str, rev: str, path: str, type: str = "model") -> None:
        found = self._repo(type, repo)
        sha, files = self._commit_of(found, rev)
        f = files.get(path)
        if f is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        headers["ETag"] = f'"{f["sha256"] if f["lfs"] else f["oid"]}"'
        if f["lfs"]:
            headers |= {"X-Linked-Etag": f'"{f["sha256"]}"', "X-Linked-Size": f["size"]}
        size, start, end, status = f["size"], 0, f["size"] - 1, 200
        rng = self.headers.get("Range")
        if rng and size:
            m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", rng)
            if m is None or m.group(1) == m.group(2) == "":
                raise HubError(416, f"Invalid range {rng}")
            if m.group(1) == "":
                start = max(0, size - int(m.group(2)))
            else:
                start, end = int(m.group(1)), min(end, int(m.group(2) or end))
            if start >= size or start > end:
                raise HubError(
                    416, f"Range not satisfiable: {rng}", headers={"Content-Range": f"bytes */{size}"}
                )
            status, headers["Content-Range"] = 206, f"bytes {start}-{end}/{size}"
        if self.command == "HEAD":
            return self._send(status, b"", headers, length=end - start + 1)
        self.hub.ranges.append(rng or "")
        with self.hub._blob(f["sha256"]).open("rb") as fh:
            fh.seek(start)
            data = fh.read(end - start + 1)
        fault = self.hub._take_fault("download")
        if fault is None:
            return self._send(status, data, headers)
        if fault["truncate"]:
            return self._send(status, data[: fault["after_bytes"]], headers)
        self._send(status, b"", headers, length=len(data))  # headers announce everything...
        self.wfile.write(data[: fault["after_bytes"]])  # ...but only part of the body comes
        self.wfile.flush()
        raise _Drop


def hub_env(monkeypatch: pytest.MonkeyPatch, hub: LocalHub, tmp_path: Path) -> Path:
    """Point `huggingface_hub` (and `transformers`, `diffusers`, `datasets` on top of it) at `hub`, for one test.

    Online mode (overrides HF_HUB_OFFLINE=1 of the Makefile/conftest), Xet disabled (uploads use LFS), token
    `hub.token` via HF_TOKEN, and every cache (hub cache, token file, datasets cache, xet cache) under
    `tmp_path/hf_home`, which is returned. Values the libraries copied at import time are patched too
    (huggingface_hub.constants, the module-level `HfApi` behind `create_repo`/`upload_folder`/..., datasets.config,
    diffusers module constants); the environment variables are set for anything imported later. Everything is
    undone by `monkeypatch` at the end of the test.
    """
    import huggingface_hub
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _cache_assets, _cache_manager, _git_credential, _http

    # Import before the environment changes, so that import-time copies hold (and get restored to) the real values.
    dc = importlib.import_module("datasets.config") if importlib.util.find_spec("datasets") else None

    home, url = tmp_path / "hf_home", hub.endpoint
    hub_cache, assets, xet, token_path = (str(home / d) for d in ("hub", "assets", "xet", "token"))
    env = dict(HF_ENDPOINT=url, HF_TOKEN=hub.token, HF_HUB_OFFLINE="0", HF_DATASETS_OFFLINE="0")
    env |= dict(
        TRANSFORMERS_OFFLINE="0", HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1", HF_HOME=str(home)
    )
    env |= dict(HF_HUB_CACHE=hub_cache, HF_ASSETS_CACHE=assets, HF_XET_CACHE=xet, HF_TOKEN_PATH=token_path)
    env |= dict(HF_DATASETS_CACHE=str(home / "datasets"), HF_HUB_DISABLE_UPDATE_CHECK="1")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HUGGINGFACE_CO_STAGING"):
        monkeypatch.delenv(key, raising=False)

    patches = [(constants, "ENDPOINT", url), (constants, "HF_HUB_OFFLINE", False)]
    patches += [(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")]
    patches += [(constants, "HF_HUB_DISABLE_XET", True), (constants, "HF_HOME", str(home))]
    patches += [(constants, name, hub_cache) for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")]
    patches += [(constants, name, assets) for name in ("HF_ASSETS_CACHE", "HUGGINGFACE_ASSETS_CACHE")]
    patches += [(constants, "HF_XET_CACHE", xet), (constants, "HF_TOKEN_PATH", token_path)]
    patches += [(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))]
    patches += [(constants, "AGENT_HARNESSES_PATH", str(home / ".agent_harnesses.json"))]
    patches += [(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {"127.0.0.1"})]
    patches += [(_http, "_HUB_ORIGINS", _http._HUB_ORIGINS | {_http._url_origin(url)})]
    patches += [(hf_api.api, "endpoint", url), (_git_credential, "ENDPOINT", url)]
    patches += [(_cache_manager, "HF_HUB_CACHE", hub_cache), (_cache_assets, "HF_ASSETS_CACHE", assets)]
    if dc is not None:
        cache = home / "datasets"
        patches += [
            (dc, "HF_ENDPOINT", url),
            (dc, "HF_HUB_OFFLINE", False),
            (dc, "HF_DATASETS_OFFLINE", False),
        ]
        patches += [(dc, "HUB_DATASETS_URL", url + "/datasets/{repo_id}/resolve/{revision}/{path}")]
        patches += [(dc, "HF_CACHE_HOME", str(home)), (dc, "HF_DATASETS_CACHE", cache)]
        patches += [(dc, "HF_MODULES_CACHE", home / "modules"), (dc, "HF_UPDATE_DOWNLOAD_COUNTS", False)]
        patches += [(dc, "DOWNLOADED_DATASETS_PATH", cache / "downloads")]
        patches += [(dc, "EXTRACTED_DATASETS_PATH", cache / "downloads" / "extracted")]
    # diffusers copies these with `from huggingface_hub.constants import ...` / os.environ at import time
    for name, module in list(sys.modules.items()):
        if name.startswith("diffusers") and module is not None:
            for attr, value in (("HF_HUB_OFFLINE", False), ("HUGGINGFACE_CO_RESOLVE_ENDPOINT", url)):
                if isinstance(getattr(module, attr, None), type(value)):
                    patches.append((module, attr, value))
    for target, name, value in patches:
        monkeypatch.setattr(target, name, value)
    huggingface_hub.close_session()  # no pooled connection to a server of an earlier test
    return home


@pytest.fixture
def local_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A running `LocalHub` with the client pointed at it (see `hub_env`). In a test module: `import hub_server`
    then `local_hub = hub_server.local_hub` (a plain import of the name trips ruff's F811 on every test using it)."""
    with LocalHub(tmp_path / "hub", token="hf_test") as hub:
        hub_env(monkeypatch, hub, tmp_path)
        yield hub


@pytest.fixture
def backoff_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the client's retry waits instead of sleeping through them."""
    import types

    from huggingface_hub import file_download
    from huggingface_hub.utils import _http

    sleeps: list[float] = []
    fake_time = types.SimpleNamespace(sleep=sleeps.append)
    monkeypatch.setattr(_http, "time", fake_time)  # http_backoff (uploads, API calls)
    monkeypatch.setattr(file_download, "time", fake_time)  # http_get (download resume)
    return sleeps
