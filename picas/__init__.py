"""picas: a CouchDB token pool and the pilots that drain it."""
