"""'picas push' adds staging to the tokens it makes (command files and --param sweeps), checked before writing."""
from __future__ import annotations

import json

from click.testing import CliRunner

from picas.cli import main
from picas.core import token as tok
from tests.helpers import client_for, pilot_env, start_pilot


def _env(couch_server, db_name, tmp_path) -> dict:
    return {k: v for k, v in pilot_env(couch_server, db_name).items() if k.startswith("PICAS_")} | {
        "PICAS_CONFIG": str(tmp_path / "conf.yml")}


def _push(env: dict, *args: str, code: int = 0, input: str | None = None):
    result = CliRunner().invoke(main, ["push", "--no-progress", *args], env=env, input=input)
    assert result.exit_code == code, f"exit {result.exit_code}: {result.output}"
    assert "Traceback" not in result.output
    return result


def _tokens(client) -> list[dict]:
    return [row.doc for row in client.all_docs(include_docs=True).rows
            if not row.id.startswith("_design/") and row.doc.get("type") == "token"]


def test_a_sweep_with_staging_runs_end_to_end(couch_server, db_name, dav, area, tmp_path):
    name, folder = area
    folder.mkdir()
    for run in (1, 2, 3):
        (folder / f"in{run}.dat").write_text(f"input {run}\n")
    client = client_for(couch_server, db_name)
    env = _env(couch_server, db_name, tmp_path)
    _push(env, "--param", "run=1..3", "--command", "cat in.dat > out.dat; echo run {run} >> out.dat",
          "--stage-in", dav.dav(f"{name}/in{{run}}.dat"), "in.dat",
          "--stage-out", "out.dat", dav.dav(f"{name}/out/{{run}}/{{token_id}}.dat"))
    tokens = _tokens(client)
    assert sorted(doc["stage_in"][0]["src"] for doc in tokens) == [dav.dav(f"{name}/in{run}.dat") for run in (1, 2, 3)]
    doc = tokens[0]
    run = doc["parameters"]["run"]
    assert doc["stage_out"] == [{"src": "out.dat", "dst": dav.dav(f"{name}/out/{run}/{{token_id}}.dat")}]

    proc = start_pilot(couch_server, db_name, "--workdir", str(tmp_path / "work"), env=pilot_env(couch_server, db_name))
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    for doc in _tokens(client):
        run = doc["parameters"]["run"]
        assert tok.state(doc) == "done", doc.get("error")
        assert (folder / "out" / str(run) / f"{doc['_id']}.dat").read_text() == f"input {run}\nrun {run}\n"
        assert list(doc["outputs"]) == [dav.dav(f"{name}/out/{run}/{doc['_id']}.dat")]


def test_command_files_get_the_template_and_bodies_with_their_own_staging_keep_it(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    env = _env(couch_server, db_name, tmp_path)
    _push(env, "-", "--stage-out", "results/*.csv", "https://se.example.org/out/{token_id}/",
          "--stage-out-on-failure", input="echo a\necho b\n")
    for doc in _tokens(client):
        assert doc["stage_out"] == [{"src": "results/*.csv", "dst": "https://se.example.org/out/{token_id}/"}]
        assert doc["stage_out_on_failure"] is True and "stage_in" not in doc
    own = tmp_path / "own.json"
    own.write_text(json.dumps([{"_id": "own", "input": "true", "stage_in": ["https://se.example.org/mine.dat"]}]))
    _push(env, str(own), "--stage-in", "https://se.example.org/template.dat", "t.dat")
    assert client.get("own")["stage_in"] == ["https://se.example.org/mine.dat"]


def test_a_template_that_does_not_fit_writes_nothing(couch_server, db_name, tmp_path):
    client = client_for(couch_server, db_name)
    env = _env(couch_server, db_name, tmp_path)
    bad = _push(env, "--param", "x=1..5", "--command", "echo {x}", "--stage-in", "https://se/{x}/{sample}.dat", "in",
                code=10)
    assert "uses {sample}, but the token has no field 'sample'" in bad.output
    bad = _push(env, "--param", "x=a,..,c", "--command", "echo {x}", "--stage-in", "https://se/in.dat", "{x}/in",
                code=10)
    assert "x=.." in bad.output and "inside the working directory" in bad.output
    bad = _push(env, "-", "--stage-out", "*.dat", "https://user:pw@se/out/", code=10, input="echo a\n")
    assert "password" in bad.output
    assert _tokens(client) == []
