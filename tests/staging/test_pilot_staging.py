"""End to end: 'picas run' (a real pilot process) against the real pouchdb-server and the real WebDAV server.

Staged tokens are staged in, run and staged out, with every stage in their
history; a token whose input is missing ends in error naming stage-in and the
file, and 'picas tokens show' and 'picas status' say so; a token without
staging runs as before; '--skip-done-outputs' marks a token done without
running it when its outputs are still where it put them.
"""
from __future__ import annotations

import zlib

from click.testing import CliRunner

from picas.cli import main
from picas.core import token as tok
from tests.helpers import client_for, pilot_env, start_pilot

NL = b"\n"
HELLO = zlib.adler32(b"hello\n")


def _run_pilot(couch_server, db_name, env, *args):
    proc = start_pilot(couch_server, db_name, *args, env=env)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, f"picas run failed: {out}\n{err}"
    return out


def _events(doc: dict) -> list[str]:
    return [entry["event"] for entry in doc.get("history", [])]


def test_picas_run_stages_tokens_in_and_out(couch_server, db_name, dav, area, backend_name, tmp_path):
    name, folder = area
    folder.mkdir()
    (folder / "in.txt").write_text("hello\n")
    marker = tmp_path / "ran.txt"
    client = client_for(couch_server, db_name)
    out_url = dav.dav(f"{name}/out/{{token_id}}.txt")
    client.bulk_save([
        tok.new_token(f"tr a-z A-Z < in.txt > out.txt; echo staged >> {marker}", "staged",
                      stage_in=[{"src": dav.dav(f"{name}/in.txt"), "checksum": f"adler32:{HELLO:x}"}],
                      stage_out=[{"src": "out.txt", "dst": out_url}]),
        tok.new_token(f"echo missing >> {marker}", "missing-input", stage_in=[dav.dav(f"{name}/absent.txt")]),
        tok.new_token(f"echo plain >> {marker}", "plain"),
    ])
    backend = "gfal2" if backend_name == "gfal2" else "http,file"
    env = pilot_env(couch_server, db_name, PICAS_STAGING_BACKEND=backend)
    _run_pilot(couch_server, db_name, env, "--workdir", str(tmp_path / "work"))

    staged = client.get("staged")
    assert tok.state(staged) == "done", staged.get("error")
    assert (folder / "out" / "staged.txt").read_text() == "HELLO\n"
    assert _events(staged) == ["locked", "stage_in_start", "stage_in_success", "run_start", "run_success",
                               "stage_out_start", "stage_out_success", "done"]
    stage_in = staged["history"][2]
    assert stage_in["bytes"] == 6 and stage_in["files"] == 1 and stage_in["host"]
    assert staged["outputs"] == {dav.dav(f"{name}/out/staged.txt"): {
        "size": 6, "checksum": f"adler32:{zlib.adler32(b'HELLO' + NL):08x}"}}
    assert {"setup_md5_checksums.json", "upload_md5_checksums.json", "deleted.txt"} <= set(staged["_attachments"])
    assert "failed_stage" not in staged

    missing = client.get("missing-input")
    assert tok.state(missing) == "error" and missing["failed_stage"] == "stage_in"
    assert missing["error"][-1]["message"].startswith("stage-in failed for absent.txt: ")
    assert _events(missing)[-3:] == ["stage_in_start", "stage_in_fail", "error"]

    plain = client.get("plain")
    assert tok.state(plain) == "done" and _events(plain) == ["locked", "done"] and "outputs" not in plain
    assert sorted(marker.read_text().split()) == ["plain", "staged"]  # the missing input stopped its payload

    runner_env = {k: v for k, v in env.items() if k.startswith("PICAS_")}
    shown = CliRunner().invoke(main, ["tokens", "show", "missing-input", "--tail", "0"], env=runner_env)
    assert shown.exit_code == 0 and "error (failed in stage-in)" in shown.output
    status = CliRunner().invoke(main, ["status"], env=runner_env)
    assert status.exit_code == 0 and "failed in: stage-in 1" in status.output

    # The output is still where the first run put it: with --skip-done-outputs the token is not run again.
    client.save(tok.reset(client.get("staged"), None, 0, "run it again"))
    _run_pilot(couch_server, db_name, env, "--workdir", str(tmp_path / "work"), "--skip-done-outputs")
    again = client.get("staged")
    assert tok.state(again) == "done" and _events(again)[-2:] == ["run_skip", "done"]
    assert sorted(marker.read_text().split()) == ["plain", "staged"]
