// Locked tokens by the time their claim runs out: lease_until, or for tokens locked
// by older clients (no lease) the lock time itself. Query with endkey=<now>; the
// value says which of the two the key is, so a scrub can apply --older-than to the latter.
function (doc) {
  if (doc.type == "token" && doc.lock > 0 && doc.done == 0 && (true /* picas:condition */)) {
    if (doc.lease_until) { emit(doc.lease_until, "lease"); }
    else { emit(doc.lock, "lock"); }
  }
}
