// The tokens of each Snakemake run, keyed by the run id, with their state as the classic views derive it.
// One query with key=<run id> answers for every job of the run at once.
function (doc) {
  if (doc.type == "token" && doc.snakemake_run) {
    var state = "other";
    if (doc.lock == 0 && doc.done == 0) {
      state = "todo";
    } else if (doc.lock > 0 && doc.done == 0) {
      state = "locked";
    } else if (doc.lock > 0 && doc.done > 0) {
      state = parseInt(doc.exit_code) == 0 ? "done" : "error";
    }
    emit(doc.snakemake_run, state);
  }
}
