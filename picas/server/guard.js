// picas' guard for pouchdb-server: loaded into its Node process with NODE_OPTIONS="--require <this file>".
//
// pouchdb-server 4.2.0 dies on a few requests that any client can send:
//   * PUT /<db> or DELETE /<db> by anyone but a server admin, once an admin exists
//     (express-pouchdb calls db.info() on the promise of a refused PouchDB.new(): TypeError);
//     DELETE /_users does not kill it but leaves every later request hanging;
//   * GET /<db>/_changes?filter=_selector (a missing design document, thrown outside any handler).
// One such request stops the whole pool.  This guard answers them the way CouchDB would,
// before pouchdb-server sees them, and keeps the process alive if anything else throws:
//   * a database-level PUT/DELETE goes through only if /_session (asked of this very server, with
//     the request's own credentials) says the caller is a server admin; otherwise 401 or 403;
//   * filter=_selector on _changes is answered 400;
//   * an exception that nothing caught is logged, the request it belongs to (when known) is
//     answered 500, and the server goes on serving.
// Nothing else is changed: every other request reaches pouchdb-server untouched.
'use strict';

const http = require('http');
const { AsyncLocalStorage } = require('async_hooks');

const current = new AsyncLocalStorage();
// Single-segment paths that anyone may PUT or DELETE (logging out); every other one names a database,
// _users and _replicator included (an anonymous DELETE /_users wedges pouchdb-server for everyone).
const OPEN = new Set(['_session']);

function log(message) {
  process.stderr.write(`[picas guard ${new Date().toISOString()}] ${message}\n`);
}

function answer(res, status, error, reason) {
  if (res.headersSent || res.writableEnded) {
    return;
  }
  const body = JSON.stringify({ error: error, reason: reason });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function databasePath(url) {
  // "/name" or "/name/" with a name that is a database, not a server endpoint.
  const path = url.split('?')[0].replace(/\/+$/, '');
  const parts = path.split('/').filter(Boolean);
  return parts.length === 1 && !OPEN.has(decodeURIComponent(parts[0])) ? parts[0] : null;
}

function selectorFilter(url) {
  const [path, query] = url.split('?');
  if (!query || !/\/_changes$/.test(path.replace(/\/+$/, ''))) {
    return false;
  }
  return new URLSearchParams(query).getAll('filter').some((value) => value.replace(/^_design\//, '') === '_selector');
}

// Ask the server itself who the caller is: it knows its admins, their hashed passwords and its sessions.
function whoIs(server, req, done) {
  const address = server.address();
  let host = address && address.address;
  if (!host || host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  const headers = {};
  for (const name of ['authorization', 'cookie']) {
    if (req.headers[name]) headers[name] = req.headers[name];
  }
  const probe = http.get({ host: host, port: address.port, path: '/_session', headers: headers, timeout: 10000 },
    (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => {
        try {
          done(res.statusCode, JSON.parse(text));
        } catch (err) {
          done(res.statusCode, null);
        }
      });
    });
  probe.on('timeout', () => probe.destroy(new Error('timeout')));
  probe.on('error', () => done(500, null));
}

const originalEmit = http.Server.prototype.emit;
http.Server.prototype.emit = function guardedEmit(event, req, res) {
  if (event !== 'request') {
    return originalEmit.apply(this, arguments);
  }
  const pass = () => current.run(res, () => originalEmit.call(this, event, req, res));
  if (selectorFilter(req.url)) {
    answer(res, 400, 'bad_request', 'filter=_selector is not supported by this server; filter on the client side');
    return true;
  }
  const method = req.method.toUpperCase();
  if (method === 'PUT' && req.url.split('?')[0].replace(/\/+$/, '') === '/_session') {
    answer(res, 405, 'method_not_allowed', 'Only GET,HEAD,POST,DELETE allowed');  // unanswered otherwise
    return true;
  }
  const db = (method === 'PUT' || method === 'DELETE') ? databasePath(req.url) : null;
  if (db === null) {
    return pass();
  }
  whoIs(this, req, (status, session) => {
    const ctx = session && session.userCtx;
    if (status === 401 && req.headers.authorization) {
      answer(res, 401, 'unauthorized', 'Name or password is incorrect.');
    } else if (ctx && Array.isArray(ctx.roles) && ctx.roles.includes('_admin')) {
      pass();
    } else if (ctx && ctx.name) {
      answer(res, 403, 'forbidden', 'You are not a server admin.');
    } else {
      answer(res, 401, 'unauthorized', 'You are not a server admin.');
    }
  });
  return true;
};

process.on('uncaughtException', (err) => {
  log(`kept serving after an uncaught exception: ${(err && err.stack) || err}`);
  const res = current.getStore();
  if (res) {
    answer(res, 500, 'internal_server_error', 'the server failed on this request; it goes on serving others');
  }
});
process.on('unhandledRejection', (reason) => {
  log(`unhandled promise rejection: ${(reason && reason.stack) || reason}`);
});
