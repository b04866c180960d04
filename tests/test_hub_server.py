"""The real `huggingface_hub` client (and `datasets`) against the local Hub test double of `hub_server.py`.

Besides checking the double, these tests pin down how the installed client behaves on network failures:

- LFS upload dropped mid-body: `http_backoff` retries the PUT (waits 1, 2, 4, 8, 8 s; 6 attempts in all). If every
  attempt fails, `upload_folder` raises `RuntimeError("Error while uploading '<path>' to the Hub.")` caused by the
  httpx2 transport error, and the commit is never sent: the repo stays at its previous commit.
- Commit call dropped: not retried (`create_commit` posts once), the httpx2 error reaches the caller. When the
  commit was applied but its response lost, re-running the upload is a no-op ("No files have been modified").
- Download dropped mid-body: `http_get` resumes (1 s wait, up to 5 times in a row without progress) with a Range
  request starting at the bytes it already wrote, which are whole chunks of `constants.DOWNLOAD_CHUNK_SIZE` (10 MB):
  a smaller file restarts from 0. It writes to a unique temporary file that is deleted on failure, so a failed or
  truncated download (size check) leaves nothing in the cache.
"""

import hashlib
import json
import os
from pathlib import Path

import httpx2
import numpy as np
import pytest
from huggingface_hub import (
    HfApi,
    constants,
    hf_hub_download,
    is_offline_mode,
    snapshot_download,
    try_to_load_from_cache,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status
from safetensors.numpy import save_file

import hub_server

local_hub = hub_server.local_hub  # the fixture (a running LocalHub, client pointed at it)
REPO = "tester/tiny"


backoff_sleeps = hub_server.backoff_sleeps  # retry waits recorded, not slept through


def model_folder(path: Path, seed: int = 0) -> Path:
    """config.json + README.md (regular git files) and a ~1 MB model.safetensors (LFS)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "tiny", "hidden_size": 8, "seed": seed}))
    (path / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny\n")
    weights = np.random.default_rng(seed).standard_normal((256, 1024)).astype(np.float32)
    save_file({"weight": weights}, str(path / "model.safetensors"))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def puts(hub, path: Path) -> int:
    return hub.requests.count(("PUT", f"/_lfs/{sha256(path)}"))


def test_env_is_online_and_isolated(local_hub, tmp_path):
    assert os.environ["HF_HUB_OFFLINE"] == "0" and not is_offline_mode()
    assert local_hub.endpoint == constants.ENDPOINT
    assert Path(constants.HF_HUB_CACHE).is_relative_to(tmp_path)
    assert HfApi().whoami()["name"] == "tester"
    with pytest.raises(HfHubHTTPError) as exc:
        HfApi(token="hf_wrong").whoami()
    assert exc.value.response.status_code == 401


def test_upload_folder_then_download(local_hub, tmp_path):
    api = HfApi()
    assert api.create_repo(REPO).repo_id == REPO
    assert api.create_repo(REPO, exist_ok=True).repo_id == REPO
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(REPO)
    assert exc.value.response.status_code == 409

    src = model_folder(tmp_path / "src")
    info = api.upload_folder(folder_path=src, repo_id=REPO, commit_message="add model")
    assert info.oid == local_hub.head(REPO)
    # Only the weights went through LFS (one PUT of their sha256); the text files were inlined in the commit.
    assert puts(local_hub, src / "model.safetensors") == 1
    assert sum(method == "PUT" for method, _ in local_hub.requests) == 1
    assert local_hub.file_info(REPO, "model.safetensors")["lfs"]
    assert not local_hub.file_info(REPO, "config.json")["lfs"]

    snapshot = Path(snapshot_download(REPO))
    assert snapshot.name == info.oid and snapshot.is_relative_to(tmp_path / "hf_home" / "hub")
    for name in ("config.json", "README.md", "model.safetensors"):
        assert (snapshot / name).read_bytes() == (src / name).read_bytes()
        assert Path(hf_hub_download(REPO, name)).read_bytes() == (src / name).read_bytes()

    assert api.list_repo_files(REPO) == [".gitattributes", "README.md", "config.json", "model.safetensors"]
    siblings = {s.rfilename: s for s in api.model_info(REPO, files_metadata=True).siblings}
    assert siblings["model.safetensors"].size == (src / "model.safetensors").stat().st_size
    assert siblings["model.safetensors"].lfs.sha256 == sha256(src / "model.safetensors")
    assert siblings["config.json"].lfs is None
    assert api.file_exists(REPO, "config.json") and not api.file_exists(REPO, "missing.json")
    # What transformers/diffusers rely on for optional files: a 404 EntryNotFound, not a 401.
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "preprocessor_config.json")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("tester/nope", "config.json")
    assert local_hub.unknown == []


def test_second_commit_keeps_first_revision(local_hub, tmp_path):
    api = HfApi()
    api.create_repo(REPO)
    src = model_folder(tmp_path / "src")
    first = api.upload_folder(folder_path=src, repo_id=REPO).oid
    old_config = (src / "config.json").read_bytes()
    new_config = json.dumps({"model_type": "tiny", "hidden_size": 16}).encode()
    second = api.upload_file(path_or_fileobj=new_config, path_in_repo="config.json", repo_id=REPO).oid

    assert Path(hf_hub_download(REPO, "config.json", revision=first)).read_bytes() == old_config
    assert Path(hf_hub_download(REPO, "config.json")).read_bytes() == new_config
    assert (Path(snapshot_download(REPO, revision=first)) / "config.json").read_bytes() == old_config
    assert [c.commit_id for c in api.list_repo_commits(REPO)][:2] == [second, first]
    assert [(b.name, b.target_commit) for b in api.list_repo_refs(REPO).branches] == [("main", second)]
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="no-such-branch")
    # Re-uploading unchanged files is a no-op: same commit, the weights are not sent again.
    assert api.upload_folder(folder_path=src, repo_id=REPO, allow_patterns=["*.safetensors"]).oid == second
    assert puts(local_hub, src / "model.safetensors") == 1
    assert local_hub.unknown == []


def test_interrupted_lfs_upload_is_retried(local_hub, tmp_path, backoff_sleeps):
    api = HfApi()
    api.create_repo(REPO)
    src = model_folder(tmp_path / "src")
    local_hub.fail_next_lfs_uploads(1, after_bytes=64 * 1024)
    info = api.upload_folder(folder_path=src, repo_id=REPO)
    assert puts(local_hub, src / "model.safetensors") == 2  # dropped once, then re-sent from the start
    assert backoff_sleeps == [1]
    assert info.oid == local_hub.head(REPO)
    assert local_hub.read(REPO, "model.safetensors") == (src / "model.safetensors").read_bytes()
    assert (
        Path(hf_hub_download(REPO, "model.safetensors")).read_bytes()
        == (src / "model.safetensors").read_bytes()
    )


def test_lfs_upload_that_keeps_failing_never_commits(local_hub, tmp_path, backoff_sleeps):
    api = HfApi()
    api.create_repo(REPO)
    previous = local_hub.head(REPO)
    src = model_folder(tmp_path / "src")
    local_hub.fail_next_lfs_uploads(6)
    with pytest.raises(RuntimeError, match="Error while uploading 'model.safetensors'") as exc:
        api.upload_folder(folder_path=src, repo_id=REPO)
    assert isinstance(exc.value.__cause__, httpx2.TransportError)
    assert puts(local_hub, src / "model.safetensors") == 6
    assert backoff_sleeps == [1, 2, 4, 8, 8]
    assert ("POST", f"/api/models/{REPO}/commit/main") not in local_hub.requests
    assert local_hub.head(REPO) == previous
    assert not (local_hub.root / "blobs" / sha256(src / "model.safetensors")).exists()

    info = api.upload_folder(folder_path=src, repo_id=REPO)  # the next try goes through
    assert info.oid == local_hub.head(REPO) != previous
    assert (
        Path(hf_hub_download(REPO, "model.safetensors")).read_bytes()
        == (src / "model.safetensors").read_bytes()
    )


def test_commit_referencing_a_missing_lfs_object_is_rejected(local_hub):
    api = HfApi()
    api.create_repo(REPO)
    previous = local_hub.head(REPO)
    lines = [{"key": "header", "value": {"summary": "sneaky", "description": ""}}]
    lines.append({"key": "file", "value": {"path": "ok.txt", "content": "aGk=", "encoding": "base64"}})
    lines.append({"key": "lfsFile", "value": {"path": "w.safetensors", "algo": "sha256", "oid": "0" * 64}})
    response = get_session().post(
        f"{local_hub.endpoint}/api/models/{REPO}/commit/main",
        content=b"".join(json.dumps(line).encode() + b"\n" for line in lines),
        headers={"Content-Type": "application/x-ndjson", **build_hf_headers()},
    )
    with pytest.raises(HfHubHTTPError, match="never uploaded") as exc:
        hf_raise_for_status(response)
    assert exc.value.response.status_code == 422
    assert local_hub.head(REPO) == previous  # nothing half-written, not even ok.txt
    assert api.list_repo_files(REPO) == [".gitattributes"]
    # An LFS PUT whose content does not hash to the announced oid is refused (and not stored).
    assert get_session().put(f"{local_hub.endpoint}/_lfs/{'0' * 64}", content=b"abc").status_code == 400
    assert not (local_hub.root / "blobs" / ("0" * 64)).exists()


def test_dropped_commit_calls(local_hub, tmp_path):
    api = HfApi()
    api.create_repo(REPO)
    previous = local_hub.head(REPO)
    src = model_folder(tmp_path / "src")

    local_hub.fail_next_commits(1)  # request lost: the client does not retry commits
    with pytest.raises(httpx2.RemoteProtocolError):
        api.upload_folder(folder_path=src, repo_id=REPO)
    assert local_hub.head(REPO) == previous
    first = api.upload_folder(folder_path=src, repo_id=REPO).oid
    assert puts(local_hub, src / "model.safetensors") == 1  # the blob of the failed try was reused

    model_folder(src, seed=1)
    local_hub.fail_next_commits(1, after_apply=True)  # commit applied, response lost
    with pytest.raises(httpx2.RemoteProtocolError):
        api.upload_folder(folder_path=src, repo_id=REPO)
    applied = local_hub.head(REPO)
    assert applied != first
    assert api.upload_folder(folder_path=src, repo_id=REPO).oid == applied  # re-run: no-op, no new commit
    assert local_hub.head(REPO) == applied


def test_interrupted_download_is_resumed(local_hub, tmp_path, backoff_sleeps, monkeypatch):
    api = HfApi()
    api.create_repo(REPO)
    src = model_folder(tmp_path / "src")
    api.upload_folder(folder_path=src, repo_id=REPO)
    expected = (src / "model.safetensors").read_bytes()

    local_hub.fail_next_downloads(1, after_bytes=100_000)
    assert Path(hf_hub_download(REPO, "model.safetensors")).read_bytes() == expected
    # The 100 kB received were less than one 10 MB chunk: never written, so the retry starts over (no Range).
    assert local_hub.ranges == ["", ""] and backoff_sleeps == [1]

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    local_hub.fail_next_downloads(1, after_bytes=100_000)
    path = hf_hub_download(REPO, "model.safetensors", force_download=True)
    assert local_hub.ranges[2:] == ["", "bytes=65536-"]  # resumed after the one whole chunk written
    assert Path(path).read_bytes() == expected


def test_failed_download_leaves_nothing_in_cache(local_hub, tmp_path, backoff_sleeps):
    api = HfApi()
    api.create_repo(REPO)
    src = model_folder(tmp_path / "src")
    api.upload_folder(folder_path=src, repo_id=REPO)
    cache = tmp_path / "hf_home" / "hub"

    def nothing_cached():
        assert try_to_load_from_cache(REPO, "model.safetensors") is None
        assert not list(cache.rglob("model.safetensors")) and not list(cache.rglob("*.incomplete"))
        assert not list(cache.glob("models--tester--tiny/blobs/*"))
        return True

    local_hub.fail_next_downloads(6)  # no byte ever comes: 1 try + 5 retries, then the error
    with pytest.raises(httpx2.RemoteProtocolError):
        hf_hub_download(REPO, "model.safetensors")
    assert len(local_hub.ranges) == 6 and backoff_sleeps == [1] * 5
    assert nothing_cached()

    local_hub.fail_next_downloads(1, after_bytes=1000, truncate=True)  # a short but "complete" response
    with pytest.raises(OSError, match="Consistency check failed"):
        hf_hub_download(REPO, "model.safetensors")
    assert nothing_cached()

    path = Path(hf_hub_download(REPO, "model.safetensors"))
    assert path.read_bytes() == (src / "model.safetensors").read_bytes()


def test_dataset_push_to_hub_and_load_dataset(local_hub, tmp_path):
    import datasets

    assert Path(datasets.config.HF_DATASETS_CACHE).is_relative_to(tmp_path)
    data = {"piece": ["bwv846", "bwv847", "k545"], "seconds": [120, 95, 180]}
    datasets.Dataset.from_dict(data).push_to_hub("tester/ds")
    files = local_hub.history("tester/ds", repo_type="dataset")[0]["files"]
    parquet = [p for p in files if p.endswith(".parquet")]
    assert len(parquet) == 1 and files[parquet[0]]["lfs"]
    assert "README.md" in files

    loaded = datasets.load_dataset("tester/ds", split="train")
    assert loaded.to_dict() == data
    assert local_hub.unknown == []
