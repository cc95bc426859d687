// Counts per state: query with group=true. The reduce is in overview_total.reduce.js.
function (doc) {
  if (doc.type == "token" && (true /* picas:condition */)) {
    var state = null;
    if (doc.lock == 0 && doc.done == 0) { state = "todo"; }
    else if (doc.lock > 0 && doc.done == 0) { state = "locked"; }
    else if (doc.lock > 0 && doc.done > 0) { state = parseInt(doc.exit_code) == 0 ? "done" : "error"; }
    if (state !== null) { emit(state, 1); }
  }
}
