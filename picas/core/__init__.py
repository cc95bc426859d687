"""The core: the CouchDB client, token documents, views and the claim protocol.

Everything here is either a pure function over token documents (``token``, ``views``)
or the one place that speaks HTTP (``http`` for the wire, ``client`` for CouchDB).
"""
