#!/usr/bin/env node
// Decide visitors with the official Flagship JS SDK (@flagship.io/js-sdk 5.2.0) in
// BUCKETING mode, fed a local bucketing file through the `initialBucketing` option.
//
//   node sdk_decide.mjs BUCKETING.json VISITORS.jsonl > DECISIONS.jsonl
//
// VISITORS.jsonl holds one request body per line, the same lines that are fed to
// `decision-fcgi eval`: {"visitor_id": "...", "context": {...}, "trigger_hit": false}.
// Output: one JSON line per visitor, in input order:
//   {"visitor_id": "...", "campaigns": [{"campaignId", "variationGroupId", "variationId"}, ...]}
// plus "error": "..." when the SDK failed to decide that visitor (a generator bug:
// the comparison treats it as a failure).
// A last line is written to stderr: {"sdk_decide_stats": {...}} with counts and the
// outbound connections that were blocked.
//
// SDK API used (read from dist/ and its source map):
//   Flagship.start(envId, apiKey, {decisionMode: DecisionMode.BUCKETING, initialBucketing,
//       pollingInterval: 0, fetchNow: false, logLevel, disableDeveloperUsageTracking: true,
//       trackingManagerConfig: {batchIntervals: 0, poolMaxSize: huge}})
//   Flagship.newVisitor({visitorId, context, hasConsented: false, shouldSaveInstance: false})
//   await visitor.fetchFlags()            -> BucketingManager.getCampaignsAsync()
//   visitor.visitorDelegate.campaigns     -> [{id, variationGroupId, variation: {id}}] in file order
//                                            (runtime field, `private` only in the typings)
//   visitor.getFlags().getMetadata()      -> Map flagKey -> {campaignId, variationGroupId, variationId}
//                                            (public API; used as a cross-check, see below)
//   visitor.flagsStatus                   -> {status, reason}; reason FLAGS_FETCHING_ERROR when the
//                                            SDK threw while deciding (e.g. a missing context key under
//                                            CONTAINS: `undefined.toString()`).
//
// Network: the SDK's node build sends through node-fetch -> http(s).request. Even with
// initialBucketing set, Flagship.start() still GETs the CDN bucketing file once; tracking
// queues hits (consent, ...). Everything that could leave the machine is stubbed below,
// BEFORE the SDK is loaded (net_guard.mjs): globalThis.fetch, http/https.request/get, net/tls
// connects and dns.lookup refuse every non-loopback destination and never send anything. The SDK keeps
// initialBucketing when the CDN fetch fails. Batching is disabled (batchIntervals 0) and the
// hit pool is never flushed (poolMaxSize huge), polling is off (pollingInterval 0).

import fs from 'node:fs';
import readline from 'node:readline';
import { installNetworkGuard } from './net_guard.mjs';

// ---------------------------------------------------------------- network guard
const blocked = installNetworkGuard();

// ---------------------------------------------------------------- SDK
const sdk = await import('@flagship.io/js-sdk');
const { Flagship, DecisionMode, LogLevel, FSFetchReasons } = sdk;

function usage() {
  process.stderr.write('usage: node sdk_decide.mjs BUCKETING.json VISITORS.jsonl\n');
  process.exit(2);
}
const [bucketingPath, visitorsPath] = process.argv.slice(2);
if (!bucketingPath || !visitorsPath) usage();

const bucketing = JSON.parse(fs.readFileSync(bucketingPath, 'utf8'));

const sdkErrors = [];
await Flagship.start('diff-test-env', 'diff-test-api-key', {
  decisionMode: DecisionMode.BUCKETING,
  initialBucketing: bucketing,
  pollingInterval: 0, // no polling loop (the one initial CDN GET is refused by the guard)
  fetchNow: false,
  reuseVisitorIds: false,
  disableDeveloperUsageTracking: true,
  hitDeduplicationTime: 0,
  trackingManagerConfig: { batchIntervals: 0, poolMaxSize: 1e12 }, // never send hits
  logLevel: process.env.SDK_DECIDE_DEBUG ? LogLevel.ALL : LogLevel.ERROR,
  onLog: (level, tag, message) => {
    // Errors are collected (not printed) so that the expected refusal of the CDN fetch does
    // not spam; set SDK_DECIDE_DEBUG=1 to print everything.
    if (process.env.SDK_DECIDE_DEBUG) process.stderr.write(`[sdk ${level}] ${tag}: ${message}\n`);
    if (level <= LogLevel.ERROR) sdkErrors.push(`${tag}: ${String(message).slice(0, 300)}`);
  },
});

function campaignsOf(visitor) {
  const delegate = visitor.visitorDelegate; // runtime field of Visitor
  const fromCampaigns = delegate && Array.isArray(delegate.campaigns)
    ? delegate.campaigns.map((c) => ({
      campaignId: c.id, variationGroupId: c.variationGroupId, variationId: c.variation?.id,
    }))
    : null;
  const flagMeta = new Map(); // flag key -> decision
  for (const [key, m] of visitor.getFlags().getMetadata()) {
    flagMeta.set(key, { campaignId: m.campaignId, variationGroupId: m.variationGroupId, variationId: m.variationId });
  }
  return { fromCampaigns, flagMeta };
}

// Cross-check the runtime `campaigns` field against the public flag metadata: every flag's
// metadata must be one of the decided campaigns, and the generator gives each campaign a flag
// key `cf_<campaignId>` present in all its variations, whose metadata must be that campaign's
// decision. Returns a string describing the problem, or null.
function crossCheck(fromCampaigns, flagMeta) {
  const key = (d) => `${d.campaignId}\u0000${d.variationGroupId}\u0000${d.variationId}`;
  const decided = new Set(fromCampaigns.map(key));
  for (const [k, d] of flagMeta) {
    if (!decided.has(key(d))) return `flag ${k} metadata ${JSON.stringify(d)} is not among the decided campaigns`;
  }
  for (const d of fromCampaigns) {
    const m = flagMeta.get(`cf_${d.campaignId}`);
    if (m !== undefined && key(m) !== key(d)) return `flag cf_${d.campaignId} metadata ${JSON.stringify(m)} != campaign ${JSON.stringify(d)}`;
  }
  return null;
}

const out = [];
let n = 0; let nErr = 0; let nFlagMismatch = 0;
const rl = readline.createInterface({ input: fs.createReadStream(visitorsPath), crlfDelay: Infinity });
for await (const line of rl) {
  if (!line.trim()) continue;
  const req = JSON.parse(line);
  const visitorId = req.visitor_id ?? req.visitorId;
  const errBefore = sdkErrors.length;
  const visitor = Flagship.newVisitor({
    visitorId,
    context: req.context || {},
    hasConsented: false, // NoConsentStrategy: no context/segment hits, no visitor cache
    shouldSaveInstance: false,
  });
  let readyError = null;
  visitor.on('ready', (err) => { if (err) readyError = err; });
  await visitor.fetchFlags();
  const rec = { visitor_id: visitorId, campaigns: [] };
  const { fromCampaigns, flagMeta } = campaignsOf(visitor);
  if (fromCampaigns) {
    rec.campaigns = fromCampaigns;
    const problem = crossCheck(fromCampaigns, flagMeta);
    if (problem) { nFlagMismatch++; rec.error = `campaigns/flags metadata disagree: ${problem}`; }
  } else {
    rec.campaigns = [...flagMeta.values()];
  }
  // A throw inside the SDK's decision (e.g. CONTAINS on a context key the visitor lacks:
  // `undefined.toString()`) makes fetchFlags() give the visitor NO campaign at all. With
  // hasConsented false the status then reads FLAGS_FETCHED_FROM_CACHE (the no-consent cache
  // answers []), so detect it from the 'ready' event error and the error log instead.
  const newErrors = sdkErrors.slice(errBefore);
  if (readyError || newErrors.length ||
      visitor.flagsStatus?.reason === FSFetchReasons.FLAGS_FETCHING_ERROR ||
      visitor.flagsStatus?.reason === FSFetchReasons.FLAGS_FETCHED_FROM_CACHE) {
    rec.error = `SDK failed to decide: ${readyError?.message || readyError || ''} ${newErrors.join(' | ')} ` +
      `(flagsStatus ${JSON.stringify(visitor.flagsStatus)})`;
  }
  if (rec.error) nErr++;
  out.push(JSON.stringify(rec));
  n++;
  if (out.length >= 512) { process.stdout.write(out.join('\n') + '\n'); out.length = 0; }
}
if (out.length) process.stdout.write(out.join('\n') + '\n');

process.stderr.write(JSON.stringify({
  sdk_decide_stats: {
    sdk_version: '5.2.0', visitors: n, visitor_errors: nErr, flag_metadata_mismatches: nFlagMismatch,
    blocked_network: blocked.length, blocked_sample: [...new Set(blocked)].slice(0, 5),
  },
}) + '\n');
// Flush stdout before exiting (nothing in the SDK keeps the loop alive, but be explicit).
process.stdout.write('', () => process.exit(0));
