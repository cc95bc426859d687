// Finished tokens whose payload failed (any exit code other than 0, or none at all).
function (doc) {
  if (doc.type == "token" && doc.lock > 0 && doc.done > 0 && parseInt(doc.exit_code) != 0 &&
      (true /* picas:condition */)) {
    emit(doc._id, doc._id);
  }
}
