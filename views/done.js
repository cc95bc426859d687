// Finished tokens whose payload exited 0.
function (doc) {
  if (doc.type == "token" && doc.lock > 0 && doc.done > 0 && parseInt(doc.exit_code) == 0 &&
      (true /* picas:condition */)) {
    emit(doc._id, doc._id);
  }
}
