"""Create the views the examples use, in the design document "Monitor".

usage: python createViews.py

    todo            lock == 0 and done == 0       waiting to be picked up
    locked          lock > 0 and done == 0        being worked on
    done            done > 0 and exit_code 0      finished fine
    error           done > 0 and exit_code != 0   finished with an error
    overview_total  the number of tokens in each of the four (map/reduce)

Running it again is harmless: a view that is there already is left alone.
"""
import picasconfig
from picas.clients import CouchDB

STATES = {
    "todo": "doc.lock == 0 && doc.done == 0",
    "locked": "doc.lock > 0 && doc.done == 0",
    "done": "doc.lock > 0 && doc.done > 0 && parseInt(doc.exit_code) == 0",
    "error": "doc.lock > 0 && doc.done > 0 && parseInt(doc.exit_code) != 0",
}

STATE_MAP = """
function(doc) {
  if (doc.type == "token" && (%s)) {
    emit(doc._id, doc._id);
  }
}
"""

OVERVIEW_MAP = """
function(doc) {
  if (doc.type != "token") { return; }
%s
}
"""

SUM = """
function(keys, values, rereduce) {
  return sum(values);
}
"""


def create_views(db, design_doc="Monitor"):
    for name, condition in STATES.items():
        db.add_view(name, STATE_MAP % condition, design_doc=design_doc)
    lines = "\n".join(f"  if ({condition}) {{ emit('{name}', 1); }}" for name, condition in STATES.items())
    db.add_view("overview_total", OVERVIEW_MAP % lines, reduce_fun=SUM, design_doc=design_doc)


if __name__ == "__main__":
    db = CouchDB(url=picasconfig.PICAS_HOST_URL, db=picasconfig.PICAS_DATABASE,
                 username=picasconfig.PICAS_USERNAME, password=picasconfig.PICAS_PASSWORD)
    create_views(db)
    print(f"Views todo, locked, done, error and overview_total are in _design/Monitor of {db.name}.")
