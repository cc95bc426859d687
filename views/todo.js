// Tokens waiting for a pilot. Key and value are the id, as in classic picas.
function (doc) {
  if (doc.type == "token" && doc.lock == 0 && doc.done == 0 && (true /* picas:condition */)) {
    emit(doc._id, doc._id);
  }
}
