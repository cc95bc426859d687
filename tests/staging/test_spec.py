"""The token's staging fields: templates, validation, and the checksum format (pure: no storage)."""
from __future__ import annotations

import base64
import hashlib
import zlib

import pytest

from picas.errors import InvalidInput
from picas.staging.backends.webdav import parse_digest
from picas.staging.checksum import Checksum, digest_chunks, file_digests
from picas.staging.spec import StageIn, plan_for, recorded_outputs

TOKEN = {"_id": "tok 1#a", "run": 7, "sample": "S-12", "flag": True, "nested": {"x": 1}}


def test_a_token_without_staging_fields_has_no_plan():
    assert plan_for({"_id": "t", "input": "echo hi"}) is None
    assert plan_for({"_id": "t", "stage_in": [], "stage_out": None}) is None


def test_templates_fill_token_id_and_fields_and_encode_them_in_urls():
    plan = plan_for({**TOKEN, "stage_in": [{"src": "davs://h/in/{sample}/{run}.dat", "dst": "in/{run}.dat"}],
                     "stage_out": [{"src": "out.dat", "dst": "davs://h/out/{token_id}/r{{1}}.dat"}]})
    assert plan.stage_in == (StageIn("davs://h/in/S-12/7.dat", "in/7.dat"),)
    assert plan.stage_out[0].dst == "davs://h/out/tok%201%23a/r{1}.dat"
    assert not plan.on_failure


@pytest.mark.parametrize("template, field", [("davs://h/{missing}", "missing"), ("davs://h/{flag}", "flag"),
                                             ("davs://h/{nested}", "nested")])
def test_a_placeholder_the_token_cannot_fill_names_the_field(template, field):
    with pytest.raises(InvalidInput, match=rf"stage_in\[0\]\.src uses {{{field}}}"):
        plan_for({**TOKEN, "stage_in": [{"src": template}]})


def test_a_bare_url_stages_in_under_its_file_name_and_checksums_are_normalized():
    plan = plan_for({"_id": "t", "stage_in": ["https://h/a/b/data%201.bin",
                                              {"src": "file:///x/y.txt", "checksum": "ADLER32:1A2B"}]})
    assert [e.dst for e in plan.stage_in] == ["data 1.bin", "y.txt"]
    assert str(plan.stage_in[1].checksum) == "adler32:00001a2b"


@pytest.mark.parametrize("entry, message", [
    ({"src": "https://user:secret@h/a"}, "holds a password"),
    ({"src": "/local/path"}, "is not a URL"),
    ({"src": "https://h/a", "dst": "../escape"}, "inside the working directory"),
    ({"src": "https://h/a", "dst": "/abs"}, "relative path"),
    ({"src": "https://h/a", "checksum": "sha1:abc"}, "unknown checksum algorithm"),
    ({"src": "https://h/a", "checksum": "adler32:123456789"}, "not a valid adler32"),
    ({"src": "https://h/a", "checksum": "md5:abc"}, "not a valid md5"),
    ({"src": "https://h/a", "bogus": 1}, "unknown key"),
    ({"src": "file://host/x"}, "file:///absolute/path"),
    ("not a url", "is not a URL"),
])
def test_bad_stage_in_entries_are_refused_with_the_reason(entry, message):
    with pytest.raises(InvalidInput, match=message):
        plan_for({"_id": "t", "stage_in": [entry]})


def test_stage_out_globs_need_a_folder_and_plain_files_keep_their_name_in_one():
    with pytest.raises(InvalidInput, match="must be a folder URL ending in '/'"):
        plan_for({"_id": "t", "stage_out": [{"src": "out/*.dat", "dst": "davs://h/out/x.dat"}]})
    plan = plan_for({"_id": "t", "stage_out": [{"src": "out/*.dat", "dst": "davs://h/out/"},
                                               {"src": "sub/r.txt", "dst": "davs://h/o/", "overwrite": True}]})
    assert plan.stage_out[0].is_glob and plan.stage_out[0].dst == "davs://h/out/"
    assert plan.stage_out[1].dst == "davs://h/o/r.txt" and plan.stage_out[1].overwrite


def test_two_inputs_to_one_path_and_non_list_fields_are_refused():
    with pytest.raises(InvalidInput, match="both write 'a'"):
        plan_for({"_id": "t", "stage_in": ["https://h/x/a", {"src": "https://h/y", "dst": "a"}]})
    with pytest.raises(InvalidInput, match="must be a list"):
        plan_for({"_id": "t", "stage_in": "https://h/x/a"})
    with pytest.raises(InvalidInput, match="stage_out_on_failure"):
        plan_for({"_id": "t", "stage_out": [{"src": "a", "dst": "https://h/a"}], "stage_out_on_failure": "yes"})


def test_recorded_outputs_skip_malformed_entries():
    doc = {"outputs": {"davs://h/a": {"size": 3, "checksum": "adler32:024d0127"},
                       "davs://h/b": {"size": "x"}, "davs://h/c": "junk"}}
    assert recorded_outputs(doc) == {"davs://h/a": (3, Checksum("adler32", "024d0127"))}


def test_checksums_match_zlib_and_hashlib_in_one_streaming_pass(tmp_path):
    data = bytes(range(256)) * 9000
    chunks = [data[i:i + 7777] for i in range(0, len(data), 7777)]
    digests = digest_chunks(chunks, ["adler32", "md5"])
    assert digests == {"adler32": f"{zlib.adler32(data):08x}", "md5": hashlib.md5(data).hexdigest()}
    assert digest_chunks([b"a"], ["adler32"])["adler32"] == "00620062"  # 8 digits, lowercase
    path = tmp_path / "f"
    path.write_bytes(data)
    assert file_digests(path, ["md5", "adler32"]) == digests
    path.write_bytes(data + b"changed")  # a changed file is read again, not served from memory
    assert file_digests(path, ["md5"])["md5"] == hashlib.md5(data + b"changed").hexdigest()


def test_storage_checksums_from_rfc3230_digest_headers():
    data = b"hello"
    assert parse_digest("ADLER32=62c0215", "adler32") == "062c0215"
    md5_b64 = base64.b64encode(hashlib.md5(data).digest()).decode()
    assert parse_digest(f"adler32=062c0215, md5={md5_b64}", "md5") == hashlib.md5(data).hexdigest()
    assert parse_digest("sha-256=abc", "adler32") is None
    assert parse_digest("adler32=not-hex", "adler32") is None
