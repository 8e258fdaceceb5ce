#!/usr/bin/env node
// Evaluates flags of a running mod_decision / decision-fcgi through the official OpenFeature
// providers, unchanged: @openfeature/server-sdk + @openfeature/ofrep-provider (the single-flag
// route) and @openfeature/web-sdk + @openfeature/ofrep-web-provider (the bulk route, its ETag
// cache and polling).
//
//   node providers.mjs server BASE_URL [API_KEY]
//   node providers.mjs web BASE_URL
//
// Prints one JSON object on the last line of stdout: the evaluation details the SDKs gave.
// "web" also watches the provider's requests (through the fetchImplementation option: the
// global fetch, observed) and, once a poll was answered 304, prints "READY" on its own line
// and keeps polling until the value of vipTitle changes (the test rewrites the bucketing file
// then), at most DEADLINE_MS.
import { OpenFeature as ServerOF } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';
import { OpenFeature as WebOF, ProviderEvents } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';

const DEADLINE_MS = 30000;
const [mode, baseUrl, apiKey] = process.argv.slice(2);
const VIP = { targetingKey: 'vip-1', plan: 'vip', age: 31, beta: true };
const FREE = { targetingKey: 'free-1', plan: 'free' };

function pick(d) {
  return { value: d.value, reason: d.reason, variant: d.variant, errorCode: d.errorCode ?? null,
           flagMetadata: d.flagMetadata };
}

async function evaluateAll(client, ctx) {
  const args = ctx ? [ctx] : [];
  return {
    bool: pick(await client.getBooleanDetails('vipOn', false, ...args)),
    string: pick(await client.getStringDetails('vipTitle', 'none', ...args)),
    number: pick(await client.getNumberDetails('vipDiscount', -1, ...args)),
    object: pick(await client.getObjectDetails('vipLimits', { fallback: true }, ...args)),
    missing: pick(await client.getBooleanDetails('doesNotExist', true, ...args)),
  };
}

async function server() {
  const headers = apiKey ? [['X-API-Key', apiKey]] : undefined;
  await ServerOF.setProviderAndWait(new OFREPProvider({ baseUrl, headers }));
  const client = ServerOF.getClient();
  const out = { matched: await evaluateAll(client, VIP), unmatched: await evaluateAll(client, FREE) };
  await ServerOF.close();
  return out;
}

async function web() {
  const log = [];
  const observed = async (req, init) => {
    const res = await fetch(req, init);
    log.push({ url: req.url, ifNoneMatch: req.headers.get('If-None-Match'), status: res.status,
               etag: res.headers.get('ETag') });
    return res;
  };
  const provider = new OFREPWebProvider({ baseUrl, pollInterval: 250, cacheMode: 'disabled',
                                          fetchImplementation: observed });
  await WebOF.setContext(VIP);
  await WebOF.setProviderAndWait(provider);
  const client = WebOF.getClient();
  const out = { matched: await evaluateAll(client) };

  // Revalidation: polls send the ETag back and get 304.
  const start = Date.now();
  while (!log.some((r) => r.status === 304) && Date.now() - start < DEADLINE_MS)
    await new Promise((r) => setTimeout(r, 50));
  out.revalidated = log.filter((r) => r.status === 304).length;
  const before = out.matched.string.value;
  let changedEvents = 0;
  client.addHandler(ProviderEvents.ConfigurationChanged, () => { changedEvents++; });
  process.stdout.write('READY\n');
  while (client.getStringValue('vipTitle', 'none') === before && Date.now() - start < DEADLINE_MS)
    await new Promise((r) => setTimeout(r, 50));
  out.afterChange = pick(client.getStringDetails('vipTitle', 'none'));
  out.changedEvents = changedEvents;

  await WebOF.setContext(FREE);
  out.unmatched = await evaluateAll(client);
  out.requests = log;
  await WebOF.close();
  return out;
}

const result = mode === 'server' ? await server() : await web();
process.stdout.write(JSON.stringify(result) + '\n');
