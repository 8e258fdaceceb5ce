#!/usr/bin/env node
// The official Flagship JS SDK (@flagship.io/js-sdk 5.2.0, installed here by `npm ci` for the
// differential test) in DECISION_API mode against a running mod_decision front end.
//
//   node sdk_decision_api.mjs SCENARIO.json > RESULT.json
//
// SCENARIO: {"envId", "apiKey", "decisionApiUrl": "http://127.0.0.1:PORT/v2/",
//            "activateUrl": "http://127.0.0.1:PORT/v2/activate", "steps": [...]}
// Steps, run in order (a visitor is named by "v"):
//   {"op": "new", "v", "visitorId", "context", "hasConsented", "isAuthenticated"}
//   {"op": "fetch", "v"}          fetchFlags(), then a snapshot of every flag: value (read with
//                                 getValue(null, false): no exposure) and metadata, plus
//                                 /v2/flags asked directly (plain fetch, same body as the
//                                 SDK's decision request) as the reference to compare with
//   {"op": "expose", "v", "keys"} flag.visitorExposed() for each key (an activation)
//   {"op": "authenticate", "v", "visitorId"} | {"op": "unauthenticate", "v"}
// RESULT: {"snapshots": [...], "requests": [...], "logs": [...], "blocked": [...],
//          "exposed": [...]} (see the end of this file).
//
// HARNESS DEVICE, NOT A USER OPTION. The SDK posts activations to a URL it builds from a
// constant (https://decision.flagship.io/v2/activate), whatever decisionApiUrl says, and
// fetches https://cdn.flagship.io/ENV/accountSettings.json at start; neither can be
// configured. So that the test can check what a server would do with those activations
// without leaving the machine, this driver replaces the SDK's HTTP function (the node-fetch
// module the SDK's node build calls, swapped by a module resolve hook before the SDK loads)
// with a hook that:
//   - sends the SDK's requests to the decision API (loopback) unchanged, recording them;
//   - redirects the hosted activate URL to scenario.activateUrl (the server under test);
//   - answers the CDN's accountSettings.json and the event endpoints itself (events.flagship.io:
//     consent, event, usage hits; ariane.abtasty.com, a hit host the SDK also names), recording
//     them; a site's real SDK sends all of these to Flagship's cloud;
//   - refuses anything else.
// Under the hook, net_guard.mjs refuses every non-loopback connection anyway: nothing leaves
// 127.0.0.1 even if the SDK found another way out.

import { createRequire, register } from 'node:module';
import fs from 'node:fs';
import { installNetworkGuard, isLoopbackHost } from './net_guard.mjs';

const require = createRequire(import.meta.url);
const blocked = installNetworkGuard();

const scenarioPath = process.argv[2];
if (!scenarioPath) {
  process.stderr.write('usage: node sdk_decision_api.mjs SCENARIO.json\n');
  process.exit(2);
}
const scenario = JSON.parse(fs.readFileSync(scenarioPath, 'utf8'));

// ---------------------------------------------------------------- the fetch hook
const HOSTED_ACTIVATE = 'https://decision.flagship.io/v2/activate';
const ANSWERED_HOSTS = new Set(['events.flagship.io', 'ariane.abtasty.com']);
const requests = []; // every request the SDK made: {method, url, to, status, body, headers}

const realFetch = require('node-fetch');
const { Response } = realFetch;

function headersOf(init) {
  const out = {};
  for (const [k, v] of Object.entries(init?.headers || {})) out[k.toLowerCase()] = String(v);
  return out;
}

async function hookedFetch(input, init = {}) {
  const url = typeof input === 'string' ? input : input.url || input.href;
  const u = new URL(url);
  const rec = {
    method: init.method || 'GET', url, to: null, status: null, headers: headersOf(init),
    body: init.body ? JSON.parse(init.body) : null,
  };
  requests.push(rec);
  const answer = (status, body) => {
    rec.to = 'answered by the test hook';
    rec.status = status;
    return new Response(JSON.stringify(body), {
      status, headers: { 'Content-Type': 'application/json' },
    });
  };
  let target = url;
  if (url === HOSTED_ACTIVATE) {
    target = scenario.activateUrl;
  } else if (u.hostname === 'cdn.flagship.io' && u.pathname.endsWith('/accountSettings.json')) {
    return answer(200, { accountSettings: {} });
  } else if (ANSWERED_HOSTS.has(u.hostname)) {
    return answer(200, {});
  } else if (!isLoopbackHost(u.hostname)) {
    rec.to = 'refused';
    throw Object.assign(new Error(`the test hook refuses ${url}`), { code: 'ENETUNREACH' });
  }
  rec.to = target;
  // the SDK's agent option picks an https agent for https: URLs; the target is plain http
  const rest = { ...init };
  delete rest.agent;
  const response = await realFetch(target, rest);
  rec.status = response.status;
  return response;
}
// The SDK's node build imports "node-fetch" and calls its default export: a module resolve
// hook gives the SDK (and only the SDK) a module whose default export is hookedFetch.
globalThis.__sdkDecisionApiFetchHook = hookedFetch;
const shim = 'data:text/javascript,' +
  encodeURIComponent('export default (...a) => globalThis.__sdkDecisionApiFetchHook(...a);');
register('data:text/javascript,' + encodeURIComponent(`
export async function resolve(specifier, context, next) {
  if (specifier === 'node-fetch' && (context.parentURL || '').includes('/@flagship.io/js-sdk/'))
    return { url: ${JSON.stringify(shim)}, shortCircuit: true };
  return next(specifier, context);
}`));

// ---------------------------------------------------------------- SDK
const { Flagship, DecisionMode, LogLevel } = await import('@flagship.io/js-sdk');

const logs = []; // {level, tag, message}: everything at WARNING or worse
await Flagship.start(scenario.envId, scenario.apiKey, {
  decisionMode: DecisionMode.DECISION_API,
  decisionApiUrl: scenario.decisionApiUrl,
  fetchNow: false,
  timeout: 10,
  reuseVisitorIds: false,
  fetchFlagsBufferingTime: 0,
  disableDeveloperUsageTracking: true,
  hitDeduplicationTime: 0,
  trackingManagerConfig: { batchIntervals: 0 },
  logLevel: LogLevel.WARNING,
  onLog: (level, tag, message) => {
    if (level <= LogLevel.WARNING) {
      logs.push({ level: LogLevel[level] ?? level, tag, message: String(message).slice(0, 2000) });
    }
  },
});

const visitors = new Map();
const snapshots = [];
const exposed = [];

async function reference(body) {
  // /v2/flags of the same server for the body the SDK just sent (plain fetch, not the SDK)
  const url = new URL('flags', scenario.decisionApiUrl).href;
  const r = await realFetch(url, {
    method: 'POST', body: JSON.stringify(body),
    headers: { 'Content-Type': 'application/json', 'x-api-key': scenario.apiKey },
  });
  return { status: r.status, body: await r.json() };
}

function flagsOf(visitor) {
  const flags = {};
  for (const key of visitor.getFlags().keys()) {
    const flag = visitor.getFlag(key);
    const value = flag.getValue(null, false);
    const m = flag.metadata;
    flags[key] = {
      value,
      metadata: {
        campaignId: m.campaignId, campaignName: m.campaignName, slug: m.slug,
        campaignType: m.campaignType, variationGroupId: m.variationGroupId,
        variationGroupName: m.variationGroupName, variationId: m.variationId,
        variationName: m.variationName, isReference: m.isReference,
      },
    };
  }
  return flags;
}

for (const [i, step] of scenario.steps.entries()) {
  const v = visitors.get(step.v);
  switch (step.op) {
  case 'new':
    visitors.set(step.v, Flagship.newVisitor({
      visitorId: step.visitorId, context: step.context || {},
      hasConsented: step.hasConsented ?? true, isAuthenticated: step.isAuthenticated ?? false,
      shouldSaveInstance: false,
    }));
    break;
  case 'fetch': {
    const first = requests.length;
    await v.fetchFlags();
    const sent = requests.slice(first).filter((r) => r.url.startsWith(scenario.decisionApiUrl));
    const snap = {
      step: i, v: step.v, visitorId: v.visitorId, anonymousId: v.anonymousId,
      flagsStatus: v.flagsStatus, flags: flagsOf(v), decisionRequests: sent.length,
    };
    if (sent.length === 1) snap.reference = await reference(sent[0].body);
    snapshots.push(snap);
    break;
  }
  case 'expose':
    for (const key of step.keys) {
      const flag = v.getFlag(key);
      flag.getValue(null, false); // the SDK exposes only a flag whose value was read
      await flag.visitorExposed();
      exposed.push({ step: i, v: step.v, visitorId: v.visitorId, anonymousId: v.anonymousId,
        key, campaignId: flag.metadata.campaignId, variationGroupId: flag.metadata.variationGroupId,
        variationId: flag.metadata.variationId });
    }
    break;
  case 'authenticate':
    v.authenticate(step.visitorId);
    break;
  case 'unauthenticate':
    v.unauthenticate();
    break;
  default:
    throw new Error(`step ${i}: unknown op ${step.op}`);
  }
}

// Activations go out as the flag is exposed (awaited above); give any other queued hit a moment.
await new Promise((resolve) => setTimeout(resolve, 200));
await Flagship.close();
process.stdout.write(JSON.stringify({ snapshots, exposed, requests, logs, blocked }) + '\n',
  () => process.exit(0));
