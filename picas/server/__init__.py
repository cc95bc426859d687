"""The managed local CouchDB-compatible server (pouchdb-server), for laptops and small clusters."""
