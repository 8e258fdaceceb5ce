// A network guard for test drivers of the Flagship JS SDK: installed BEFORE the SDK is
// loaded, it makes every non-loopback destination fail without sending anything.
//
//   import { installNetworkGuard } from './net_guard.mjs';
//   const blocked = installNetworkGuard();   // refused attempts, as strings
//
// It replaces globalThis.fetch, http/https.request/get, net.Socket.prototype.connect (which
// tls uses too) and dns.lookup. A refused request throws (or fails its socket) with code
// ENETUNREACH, and its description is pushed to the returned array. Used by sdk_decide.mjs
// (bucketing mode) and sdk_decision_api.mjs (decision-API mode).

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export function isLoopbackHost(h) {
  if (h === undefined || h === null || h === '') return false;
  h = String(h).toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) ||
    h === '::ffff:127.0.0.1';
}

let installed = null;

export function installNetworkGuard() {
  if (installed) return installed;
  const blocked = [];
  installed = blocked;
  function refuse(what) {
    blocked.push(String(what));
    const e = new Error(`network access refused by the test's guard (${what})`);
    e.code = 'ENETUNREACH';
    return e;
  }
  function hostOfRequestArgs(args) {
    // http.request(url[, options][, cb]) | http.request(options[, cb])
    for (const a of args) {
      if (typeof a === 'string') { try { return new URL(a).hostname; } catch { return a; } }
      if (a instanceof URL) return a.hostname;
      if (a && typeof a === 'object' && (a.hostname || a.host)) return a.hostname || String(a.host).replace(/:\d+$/, '');
    }
    return 'localhost'; // node's default host
  }
  function describeRequestArgs(args) {
    for (const a of args) {
      if (typeof a === 'string') return a;
      if (a instanceof URL) return a.href;
      if (a && typeof a === 'object' && (a.hostname || a.host)) {
        return `${a.protocol || ''}//${a.hostname || a.host}${a.path || ''}`;
      }
    }
    return '?';
  }
  for (const modName of ['http', 'https']) {
    const mod = require(modName);
    for (const fn of ['request', 'get']) {
      const orig = mod[fn];
      mod[fn] = function guardedRequest(...args) {
        if (!isLoopbackHost(hostOfRequestArgs(args))) throw refuse(`${modName}.${fn} ${describeRequestArgs(args)}`);
        return orig.apply(this, args);
      };
    }
  }
  const net = require('net');
  const origConnect = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function guardedConnect(...args) {
    let opts = args[0];
    if (Array.isArray(opts)) opts = opts[0]; // internal normalized form
    let host;
    if (opts && typeof opts === 'object') {
      if (opts.path) return origConnect.apply(this, args); // unix socket
      host = opts.host ?? 'localhost';
    } else if (typeof opts === 'number' || typeof opts === 'string') {
      if (typeof opts === 'string' && isNaN(Number(opts))) return origConnect.apply(this, args); // unix path
      host = typeof args[1] === 'string' ? args[1] : 'localhost';
    }
    if (!isLoopbackHost(host)) {
      const err = refuse(`net.connect ${host}`);
      process.nextTick(() => this.destroy(err));
      return this;
    }
    return origConnect.apply(this, args);
  };
  const dns = require('dns');
  const origLookup = dns.lookup;
  dns.lookup = function guardedLookup(hostname, ...rest) {
    if (!isLoopbackHost(hostname)) {
      const cb = rest[rest.length - 1];
      const err = refuse(`dns.lookup ${hostname}`);
      if (typeof cb === 'function') process.nextTick(() => cb(err));
      return undefined;
    }
    return origLookup.call(this, hostname, ...rest);
  };
  const origFetch = globalThis.fetch;
  globalThis.fetch = async function guardedFetch(input, init) {
    const url = typeof input === 'string' ? input : (input && (input.url || input.href)) || String(input);
    let host;
    try { host = new URL(url).hostname; } catch { host = ''; }
    if (!isLoopbackHost(host) || !origFetch) throw refuse(`fetch ${url}`);
    return origFetch(input, init);
  };
  return blocked;
}
