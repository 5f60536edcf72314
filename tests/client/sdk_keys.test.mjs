// The official openai package against a `hearth serve` with API keys (run.sh writes the
// keys): typed errors for a wrong key and a forbidden feature, 429s as RateLimitError,
// the SDK's automatic retries (counted on the server's /metrics) honouring Retry-After,
// and the SDK's `timeout` ending a request that waits for a slot, which the server then
// drops from its queue.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.HEARTH_KEYED_URL;
const model = process.env.HEARTH_MODEL;
const messages = [{ role: 'user', content: 'Write one line about the sea.' }];
const keyed = (apiKey, opts = {}) => new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60000, ...opts });
const admin = keyed(process.env.HEARTH_SDK_ADMIN_KEY);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function metric(line) {
  const r = await fetch(baseURL.replace(/\/v1$/, '/metrics'), {
    headers: { Authorization: `Bearer ${process.env.HEARTH_SDK_ADMIN_KEY}` },
  });
  assert.equal(r.status, 200);
  const text = await r.text();
  const hit = text.split('\n').find((l) => l.startsWith(line + ' '));
  return hit ? Number(hit.slice(line.length + 1)) : 0;
}

// Polls until pred(value of the metric) holds; fails naming the last value after ~30 s.
async function waitMetric(line, pred) {
  let v = 0;
  for (let i = 0; i < 600; i++) {
    v = await metric(line);
    if (pred(v)) return v;
    await sleep(50);
  }
  assert.fail(`${line} stayed at ${v}`);
}

// A long stream that holds a slot (and the key's concurrency) until aborted.
async function holdStream(client, target = model, maxTokens = 2000) {
  const ac = new AbortController();
  const stream = await client.chat.completions.create(
    { model: target, messages, max_tokens: maxTokens, ignore_eos: true, stream: true },
    { signal: ac.signal },
  );
  const drained = (async () => {
    try {
      for await (const _ of stream);
    } catch (e) {
      if (!(e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError')) throw e;
    }
  })();
  return { abort: async () => { ac.abort(); await drained; } };
}

test('a wrong key is AuthenticationError, a forbidden feature PermissionDeniedError', async () => {
  await assert.rejects(keyed('not-a-key-at-all').chat.completions.create({ model, messages, max_tokens: 2 }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401 && e.code === 'invalid_api_key');
  await assert.rejects(keyed('not-a-key-at-all').models.list(), (e) => e instanceof OpenAI.AuthenticationError);
  const noTools = keyed(process.env.HEARTH_SDK_NOTOOLS_KEY);
  const ok = await noTools.chat.completions.create({ model, messages, max_tokens: 2 });
  assert.equal(ok.choices.length, 1);
  await assert.rejects(
    noTools.chat.completions.create({
      model, messages, max_tokens: 2, tools: [{ type: 'function', function: { name: 'get_weather' } }],
    }),
    (e) => e instanceof OpenAI.PermissionDeniedError && e.status === 403 && e.code === 'tools_not_allowed',
  );
});

test('tokens_per_minute: RateLimitError; a wait of minutes is not retried by the SDK', async () => {
  const line = 'hearth_rate_limited_total{key="sdk-tpm",kind="tokens"}';
  // one request spends far more than the key's 6 tokens a minute: the next one waits minutes
  await keyed(process.env.HEARTH_SDK_TPM_KEY).chat.completions.create({ model, messages, max_tokens: 2 });
  for (const maxRetries of [0, 2]) {
    const before = await metric(line);
    await assert.rejects(
      keyed(process.env.HEARTH_SDK_TPM_KEY, { maxRetries }).chat.completions.create({ model, messages, max_tokens: 2 }),
      (e) => {
        assert.ok(e instanceof OpenAI.RateLimitError, `${e.constructor.name} ${e.status}`);
        assert.equal(e.code, 'rate_limit_exceeded');
        assert.ok(Number(e.headers.get('retry-after')) >= 60, `retry-after ${e.headers.get('retry-after')}`);
        // the SDK would sleep that long before retrying by itself: the server says not to
        assert.equal(e.headers.get('x-should-retry'), 'false');
        return true;
      },
    );
    assert.equal(await metric(line), before + 1, `maxRetries ${maxRetries}: one attempt`);
  }
});

test('max_concurrent: 429 with Retry-After 1, and the SDK retry waits for it and then succeeds', async () => {
  const line = 'hearth_rate_limited_total{key="sdk-single",kind="concurrency"}';
  const single = keyed(process.env.HEARTH_SDK_SINGLE_KEY);
  const holder = await holdStream(single);
  let released = false;
  let e429ShouldRetry;
  try {
    await assert.rejects(single.chat.completions.create({ model, messages, max_tokens: 2 }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, `${e.constructor.name} ${e.status} ${e.message}`);
      assert.equal(e.code, 'rate_limit_exceeded');
      assert.equal(e.headers.get('retry-after'), '1');
      e429ShouldRetry = e.headers.get('x-should-retry');
      return true;
    });
    const before = await metric(line);
    const started = Date.now();
    const retried = keyed(process.env.HEARTH_SDK_SINGLE_KEY, { maxRetries: 2 })
      .chat.completions.create({ model, messages, max_tokens: 2 });
    await waitMetric(line, (v) => v > before); // the first attempt was refused
    await holder.abort();
    released = true;
    const r = await retried;
    assert.equal(r.choices.length, 1);
    const refused = (await metric(line)) - before;
    assert.ok(refused >= 1 && refused <= 2, `refused attempts ${refused}`);
    assert.equal(e429ShouldRetry, null);
    // the SDK slept the server's Retry-After (1 s), not its own first backoff (<= 0.5 s)
    assert.ok(Date.now() - started >= 900, `retried after ${Date.now() - started} ms`);
  } finally {
    if (!released) await holder.abort();
  }
});

test('the SDK timeout ends a request waiting for a slot; the server drops it from the queue', async () => {
  const queued = `hearth_queue_depth{model="${model}"}`;
  const gone = `hearth_requests_total{route="chat",model="${model}",status="499"}`;
  const holders = [await holdStream(admin), await holdStream(admin)]; // both slots busy
  try {
    const before = await metric(gone);
    const started = Date.now();
    await assert.rejects(
      admin.chat.completions.create({ model, messages, max_tokens: 4, stream: true }, { timeout: 300 }),
      (e) => e instanceof OpenAI.APIConnectionTimeoutError,
    );
    // the server saw the client leave, ended the request and emptied its queue
    await waitMetric(gone, (v) => v === before + 1);
    await waitMetric(queued, (v) => v === 0);
  } finally {
    for (const h of holders) await h.abort();
  }
  await waitMetric(`hearth_slots_busy{model="${model}"}`, (v) => v === 0);
  const after = await admin.chat.completions.create({ model, messages, max_tokens: 2 });
  assert.equal(after.choices.length, 1);
});

test('a 503 for the queue wait: InternalServerError with maxRetries 0, retried after Retry-After with 2', async () => {
  // llama-wait: one slot, max_queue_wait 100 ms; a running 600-token stream makes the wait longer
  const wait = 'llama-wait';
  const line = `hearth_requests_refused_total{model="${wait}",reason="queue_wait"}`;
  const holder = await holdStream(admin, wait, 600);
  let released = false;
  try {
    const before = await metric(line);
    await assert.rejects(admin.chat.completions.create({ model: wait, messages, max_tokens: 2 }), (e) => {
      assert.ok(e instanceof OpenAI.InternalServerError && e.status === 503, `${e.constructor.name} ${e.status} ${e.message}`);
      assert.equal(e.code, 'queue_wait_exceeded');
      const ra = Number(e.headers.get('retry-after'));
      assert.ok(ra >= 1 && ra < 60, `retry-after ${ra}`);
      assert.equal(e.headers.get('x-should-retry'), null);
      return true;
    });
    assert.equal(await metric(line), before + 1, 'maxRetries 0: one attempt');
    const started = Date.now();
    const retried = keyed(process.env.HEARTH_SDK_ADMIN_KEY, { maxRetries: 2 })
      .chat.completions.create({ model: wait, messages, max_tokens: 2 });
    await waitMetric(line, (v) => v > before + 1); // refused again, then the SDK sleeps Retry-After
    await holder.abort();
    released = true;
    const r = await retried;
    assert.equal(r.choices.length, 1);
    assert.ok(Date.now() - started >= 900, `retried after ${Date.now() - started} ms`);
  } finally {
    if (!released) await holder.abort();
  }
});
