// Tokens a pilot holds and has not finished.
function (doc) {
  if (doc.type == "token" && doc.lock > 0 && doc.done == 0 && (true /* picas:condition */)) {
    emit(doc._id, doc._id);
  }
}
