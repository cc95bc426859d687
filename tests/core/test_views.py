"""View deployment: idempotent, conditions for pilot classes, user views kept."""
import pytest

from picas.core import views
from picas.errors import InvalidInput
from tests.helpers import client_for, overview, push


def test_deploy_is_idempotent(couch_server, db_name):
    client = client_for(couch_server, db_name, deploy=False)
    assert views.deploy(client) is True
    rev = client.get("_design/Monitor")["_rev"]
    assert views.deploy(client) is False
    assert client.get("_design/Monitor")["_rev"] == rev
    assert set(views.CLASSIC_VIEWS) <= set(client.get("_design/Monitor")["views"])


def test_user_views_in_the_design_doc_are_kept(couch_server, db_name):
    client = client_for(couch_server, db_name, deploy=False)
    client.save({"_id": "_design/Monitor", "views": {"mine": {"map": "function(doc){ emit(doc._id, 1); }"}}})
    assert views.deploy(client)
    assert "mine" in client.get("_design/Monitor")["views"]
    assert views.deploy(client) is False


def test_condition_selects_a_pilot_class(couch_server, db_name):
    client = client_for(couch_server, db_name)
    views.deploy(client, design="MultiCore", condition="doc.cores == 4")
    push(client, ["true"] * 3)
    ids = push(client, ["true"] * 2)
    for token_id in ids:
        doc = client.get(token_id)
        doc["cores"] = 4
        client.save(doc)
    assert overview(client) == {"todo": 5}
    assert sorted(r.id for r in client.view("MultiCore", "todo")) == sorted(ids)
    assert {r.key: r.value for r in client.view("MultiCore", "overview_total", group=True)} == {"todo": 2}
    assert views.deploy(client, design="MultiCore", condition="doc.cores == 4") is False


@pytest.mark.parametrize("condition", ["", "doc.a == 1; emit(1)", "doc.a == (1", "doc.a == ')'"[:-1]])
def test_bad_conditions_are_refused(condition):
    with pytest.raises(InvalidInput):
        views.design_document(condition)


def test_classic_view_shapes(couch_server, db_name):
    client = client_for(couch_server, db_name)
    client.bulk_save([
        {"_id": "todo1", "type": "token", "lock": 0, "done": 0},
        {"_id": "lock1", "type": "token", "lock": 5, "done": 0},
        {"_id": "done1", "type": "token", "lock": 5, "done": 6, "exit_code": 0},
        {"_id": "err1", "type": "token", "lock": 5, "done": 6, "exit_code": "1"},
        {"_id": "err2", "type": "token", "lock": 99, "done": 99, "exit_code": ""},
        {"_id": "other", "type": "job", "lock": 0, "done": 0},
    ])
    assert [(r.id, r.key, r.value) for r in client.view("Monitor", "todo")] == [("todo1", "todo1", "todo1")]
    assert [r.id for r in client.view("Monitor", "locked")] == ["lock1"]
    assert [r.id for r in client.view("Monitor", "done")] == ["done1"]
    assert sorted(r.id for r in client.view("Monitor", "error")) == ["err1", "err2"]
    assert overview(client) == {"todo": 1, "locked": 1, "done": 1, "error": 2}
