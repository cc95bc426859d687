"""The rest of the picas 1.1.x modules: generators, metadata, picaslogger, couchdblogger, srm, srmclient, jobid.

The loggers write to the real test server; the storage API copies files
through picas' transfers to file:// URLs and to a real WebDAV server
(tests/staging's wsgidav, in a process of its own).
"""
from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from picas import srm, srmclient
from picas.core.client import CouchClient
from picas.couchdblogger import CouchDBLogger
from picas.generators import TokenGenerator
from tests.staging.conftest import start_dav


# ---------------------------------------------------------------------- generators, metadata, jobid
def test_token_generator_gives_a_fresh_todo_token_each_time():
    token = TokenGenerator.get_empty_token()
    assert token == {"lock": 0, "done": 0, "hostname": "", "scrub_count": 0, "type": "token"}
    token["lock"] = 5
    assert TokenGenerator().get_empty_token()["lock"] == 0


def test_metadata_matches_the_installed_package():
    from picas import __version__, metadata

    assert metadata.version == __version__ and metadata.project == metadata.package == "picas"
    assert metadata.description and metadata.license and isinstance(metadata.authors, list)
    assert metadata.authors_string == ", ".join(metadata.authors)


def test_classic_jobid_path_is_the_pilot_module():
    import picas.jobid
    import picas.pilot.jobid

    assert picas.jobid is picas.pilot.jobid


# ---------------------------------------------------------------------- picaslogger
def test_picaslogger_prints_info_once_in_the_classic_format():
    code = ("import logging\nlogging.basicConfig(level=logging.INFO)\n"
            "import importlib, picas.picaslogger as m\nimportlib.reload(m)\n"
            "m.picaslogger.info('token %s done', 't1')\nm.picaslogger.debug('not shown')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr  # not twice (root handler), not after a reload
    assert lines[0].endswith(" - PiCaS - INFO - token t1 done")


# ---------------------------------------------------------------------- couchdblogger
def test_couchdb_logger_stores_each_record(couch_server, db_name):
    user, password = couch_server.admin
    handler = CouchDBLogger(couch_server.url, db_name, username=user, password=password)
    logger = logging.getLogger(f"picas-test-{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("token %s failed with %d", "t7", 3)
        logger.warning("second record in the same second")
    finally:
        handler.close()
    client = CouchClient(couch_server.url, db_name, username=user, password=password)
    docs = sorted((row.doc for row in client.all_docs(include_docs=True).rows), key=lambda d: d["created"])
    assert [doc["msg"] for doc in docs] == ["token t7 failed with 3", "second record in the same second"]
    first = docs[0]
    assert first["type"] == "log" and first["lvl"] == logging.WARNING
    assert first["func"] == "test_couchdb_logger_stores_each_record" and first["host"]
    assert docs[1]["trance_nr"] == first["trance_nr"]


def test_couchdb_logger_never_raises_into_the_program(monkeypatch):
    from picas.server.local import free_port

    handler = CouchDBLogger(f"http://127.0.0.1:{free_port()}", "nowhere")
    failures = []
    monkeypatch.setattr(handler, "handleError", lambda record: failures.append(record.getMessage()))
    logger = logging.getLogger(f"picas-test-{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.error("nobody listens")
    assert failures == ["nobody listens"]


# ---------------------------------------------------------------------- srm, srmclient
@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, str]:
    """A local folder with a file, an empty 'storage' folder, and the storage's file:// URL prefix."""
    local, storage = tmp_path / "local", tmp_path / "storage"
    local.mkdir()
    storage.mkdir()
    (local / "data.txt").write_text("payload\n")
    return local, storage, f"file://{storage}"


def test_srm_client_round_trip_over_file_urls(files, tmp_path):
    local, storage, host = files
    client = srm.SRMClient(logging.getLogger("test"), host=host)
    url = client.upload(str(local / "data.txt"), "/run1")
    assert url == f"{host}/run1/data.txt" and (storage / "run1" / "data.txt").read_text() == "payload\n"
    assert client.remote_exists("/run1/data.txt") and not client.remote_exists("/run1/other.txt")
    # The same bytes again: kept as they are; other bytes under the same name: refused, never overwritten.
    assert client.upload(str(local / "data.txt"), "/run1") == url
    (local / "data.txt").write_text("changed\n")
    with pytest.raises(srm.SRMError, match="Upload failed: .*already exists") as refused:
        client.upload(str(local / "data.txt"), "/run1")
    assert isinstance(refused.value, EnvironmentError)
    with pytest.raises(EnvironmentError) as exists:
        client.upload(str(local / "data.txt"), "/run1", check=True)
    assert exists.value.errno == 11
    with pytest.raises(EnvironmentError) as missing:
        client.upload(str(local / "nope.txt"), "/run1", check=True)
    assert missing.value.errno == 10

    down = tmp_path / "down"
    down.mkdir()
    assert client.download("/run1/data.txt", str(down)) == str(down / "data.txt")
    assert (down / "data.txt").read_text() == "payload\n"
    with pytest.raises(srm.SRMError) as absent:
        client.download("/run1/nope.txt", str(down), check=True)
    assert absent.value.errno == 10
    with pytest.raises(srm.SRMError, match="Download failed"):
        client.download("/run1/nope.txt", str(down))
    assert not list(down.glob(".*part"))  # no partial file left behind

    assert client.remove("/run1/data.txt") is True and not (storage / "run1" / "data.txt").exists()
    assert client.remove("/run1/data.txt") is True  # gone already counts as removed


def test_download_many_and_srmclient_report_every_failure(files, tmp_path, monkeypatch):
    local, storage, host = files
    for name in ("a", "b", "c"):
        (storage / f"{name}.dat").write_text(name)
    target = tmp_path / "many"
    target.mkdir()
    got = srm.download_many(["/a.dat", "/b.dat", "/c.dat"], poolsize=2, host=host, local_dir=str(target))
    assert sorted(Path(p).read_text() for p in got) == ["a", "b", "c"]
    with pytest.raises(srm.SRMError, match=r"1 of 2 download\(s\) failed: /missing.dat"):
        srm.download_many(["/a.dat", "/missing.dat"], host=host, local_dir=str(target))

    # srmclient: the values of a dict, under the default host, into the current directory.
    monkeypatch.chdir(target)
    monkeypatch.setattr(srm, "DEFAULT_HOST", host)
    (target / "a.dat").unlink()
    assert srmclient.download({"first": "/a.dat"}, threads=2) == ["./a.dat"]
    assert (target / "a.dat").read_text() == "a"


def test_module_level_upload_and_download_take_full_urls(files, tmp_path):
    local, storage, host = files
    (local / "second.txt").write_text("2")
    urls = srm.upload_many([str(local / "data.txt"), str(local / "second.txt")], f"{host}/bulk", poolsize=2)
    assert sorted(urls) == [f"{host}/bulk/data.txt", f"{host}/bulk/second.txt"]
    assert srm.upload(str(local / "data.txt"), f"{host}/one") == f"{host}/one/data.txt"
    out = tmp_path / "out"
    out.mkdir()
    assert Path(srm.download(f"{host}/bulk/second.txt", str(out))).read_text() == "2"
    with pytest.raises(srm.SRMError, match="1 of 1 upload"):
        srm.upload_many([str(local / "absent.txt")], f"{host}/bulk")


def test_srm_client_over_webdav(tmp_path):
    server = start_dav(tmp_path / "dav")
    try:
        (tmp_path / "result.txt").write_text("from a worker node\n")
        client = srm.SRMClient(logging.getLogger("test"), host=server.url)
        url = client.upload(str(tmp_path / "result.txt"), "/out")
        assert url == f"{server.url}/out/result.txt"
        assert (server.root / "out" / "result.txt").read_text() == "from a worker node\n"
        back = tmp_path / "back"
        back.mkdir()
        assert Path(client.download("/out/result.txt", str(back))).read_text() == "from a worker node\n"
        assert client.remove("/out/result.txt") and not client.remote_exists("/out/result.txt")
    finally:
        server.stop()


def test_an_unsupported_scheme_names_what_to_install(files):
    client = srm.SRMClient(host="gsiftp://nowhere.example.org")
    with pytest.raises(srm.SRMError) as failed:
        client.download("/x", str(files[0]))
    assert "gsiftp" in str(failed.value)


def test_modules_import_on_their_own():
    for name in ("picas.srm", "picas.srmclient", "picas.couchdblogger", "picas.metadata", "picas.generators",
                 "picas.picaslogger", "picas.picas_config", "picas.crypto", "picas.apps.picas_cli", "picas.jobid"):
        out = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        assert out.returncode == 0, (name, out.stderr)
    assert importlib.import_module("picas.apps").__doc__


# ---------------------------------------------------------------------- the 1.1.x API, name by name
#: Every public module-level name and method of picas 1.1.2 (read from its wheel), except the ones
#: docs/coming-from-1x.md lists as gone: picas.VERSION, picas.actors.stopit_logger and the argparse
#: helpers of picas.apps.picas_cli (parse_args and the three sub-command functions).
API_112 = {
    "picas.actors": ["log", "AbstractRunActor(reconnect,_run,run,handler,setup_handler,prepare_env,prepare_run,"
                     "process_task,cleanup_run,cleanup_env)", "RunActor(run)"],
    "picas.apps.picas_cli": ["main"],
    "picas.clients": ["CouchDB(copy,get_from_view,get,get_single_from_view,view,save,save_documents,add_view,delete,"
                      "delete_documents,delete_from_view,set_users,is_view_nonempty,doc_count)"],
    "picas.couchdblogger": ["CouchDBLogger(emit)", "default_log_formatter"],
    "picas.crypto": ["CRYPTO_KEY_PATH", "generate_and_save_key", "read_key", "encrypt_password", "decrypt_password"],
    "picas.documents": ["Document(id,rev,value,update,put_attachment,get_attachment,remove_attachment)", "User()",
                        "Task(lock,done,input,output,uploads,scrub,error,has_error,get_errors,is_done)",
                        "Job(queue,start,finish,archive,is_done)"],
    "picas.executers": ["execute", "execute_old"],
    "picas.generators": ["TokenGenerator(get_empty_token)"],
    "picas.iterators": ["ViewIterator(reset,stop,is_stopped,claim_task,reconnect)", "TaskViewIterator(claim_task)",
                        "PrioritizedViewIterator(claim_task)", "EndlessViewIterator(is_cancelled)"],
    "picas.jobid": ["add_job_id", "remove_job_id"],
    "picas.metadata": ["project", "package", "description", "project_no_spaces", "version", "authors",
                       "authors_string", "emails", "license", "copyright", "url"],
    "picas.modifiers": ["TokenModifier(lock,unlock,close,unclose,add_output,scrub,set_error)",
                        "BasicTokenModifier(lock,unlock,close,unclose,add_output,scrub,set_error)",
                        "NestedTokenModifier(get_token,lock,unlock,close,unclose,add_output,scrub,set_error)"],
    "picas.picas_config": ["PicasConfigSchemaError()", "PICAS_CONFIG_SCHEMA",
                           "PicasConfig(validate_config,load_config,save_config,write_config,change_couchdb_password,"
                           "change_password)"],
    "picas.picaslogger": ["picaslogger", "formatter", "ch"],
    "picas.srm": ["download", "upload", "download_many", "upload_many", "Downloader(run)",
                  "SRMClient(remote_exists,upload,download,remove)"],
    "picas.srmclient": ["download", "Downloader(run)"],
    "picas.util": ["time_elapsed", "merge_dicts", "seconds", "Timer(elapsed,reset)"],
    "picas": ["CouchDB", "Document", "EndlessViewIterator", "Job", "PrioritizedViewIterator", "RunActor", "Task",
              "TaskViewIterator", "User", "ViewIterator"],
}


@pytest.mark.parametrize("module", sorted(API_112))
def test_every_112_name_is_here(module):
    loaded = importlib.import_module(module)
    missing = []
    for entry in API_112[module]:
        name, _, methods = entry.partition("(")
        if not hasattr(loaded, name):
            missing.append(name)
            continue
        missing += [f"{name}.{method}" for method in methods.rstrip(")").split(",") if method
                    and not hasattr(getattr(loaded, name), method)]
    assert not missing


def test_execute_old_returns_the_wait_status_like_os_system(capfd):
    from picas.executers import execute_old

    assert execute_old("echo to-our-stdout") == 0
    assert capfd.readouterr().out == "to-our-stdout\n"
    assert execute_old("exit 3") == 3 << 8
    assert execute_old("kill -TERM $$") == 15
