// The official openai package against `hearth serve`: what a real client sees.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.env.HEARTH_URL, apiKey: 'unused', maxRetries: 0, timeout: 60000 });
const model = process.env.HEARTH_MODEL;
const messages = [{ role: 'user', content: 'Write one line about the sea.' }];

test('models.list shows the served model', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, [model]);
  const one = await client.models.retrieve(model);
  assert.equal(one.id, model);
});

test('chat: plain and streamed text are equal at temperature 0', async () => {
  const plain = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
  assert.equal(plain.object, 'chat.completion');
  assert.equal(plain.choices[0].message.role, 'assistant');
  assert.equal(plain.usage.completion_tokens, 12);
  assert.equal(plain.usage.total_tokens, plain.usage.prompt_tokens + plain.usage.completion_tokens);

  const stream = await client.chat.completions.create({
    model, messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      text += c.delta.content ?? '';
      finish = c.finish_reason ?? finish;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, plain.choices[0].message.content);
  assert.equal(finish, 'length');
  // the same prompt again: all but its last token come from the prefix cache
  assert.deepEqual({ ...usage, prompt_tokens_details: undefined }, { ...plain.usage, prompt_tokens_details: undefined });
  assert.equal(usage.prompt_tokens_details.cached_tokens, plain.usage.prompt_tokens - 1);
});

test('completions: text and stop strings', async () => {
  const r = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 10, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.ok(r.choices[0].text.length > 0);
  assert.equal(r.choices[0].finish_reason, 'length');
  const stop = r.choices[0].text.slice(4, 5);
  const cut = await client.completions.create({
    model, prompt: 'Once upon a time', max_tokens: 10, temperature: 0, stop: [stop],
  });
  assert.equal(cut.choices[0].text, r.choices[0].text.slice(0, r.choices[0].text.indexOf(stop)));
  assert.equal(cut.choices[0].finish_reason, 'stop');
});

test('errors surface as the SDK typed errors', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found',
  );
  await assert.rejects(
    client.chat.completions.create({ model, messages, temperature: 7 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'temperature',
  );
  await assert.rejects(
    client.chat.completions.create({ model, messages: [{ role: 'wizard', content: 'x' }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages[0].role',
  );
});

test('abort mid-stream, then the server still answers', async () => {
  const ac = new AbortController();
  const stream = await client.chat.completions.create(
    { model, messages, max_tokens: 1500, ignore_eos: true, stream: true },
    { signal: ac.signal },
  );
  let chunks = 0;
  try {
    for await (const _ of stream) {
      if (++chunks === 3) ac.abort();
    }
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError', String(e));
  }
  // the SDK ends the iteration at the abort, long before 1500 tokens
  assert.ok(chunks >= 3 && chunks < 50, `chunks ${chunks}`);
  const after = await client.chat.completions.create({ model, messages, max_tokens: 3, temperature: 0 });
  assert.equal(after.choices.length, 1);
});

test('embeddings.create with a string and with an array (bert server)', async () => {
  const embedder = new OpenAI({ baseURL: process.env.HEARTH_EMBED_URL, apiKey: 'unused', maxRetries: 0, timeout: 60000 });
  const embedModel = process.env.HEARTH_EMBED_MODEL;
  const one = await embedder.embeddings.create({ model: embedModel, input: 'the quick brown fox' });
  assert.equal(one.object, 'list');
  assert.equal(one.model, embedModel);
  assert.equal(one.data.length, 1);
  const v = one.data[0].embedding;
  assert.equal(v.length, 256);
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  assert.ok(Math.abs(norm - 1) < 1e-4, `norm ${norm}`);
  assert.ok(one.usage.prompt_tokens > 0 && one.usage.total_tokens === one.usage.prompt_tokens);
  // the SDK asks for base64 by default and decodes it; float must give the same numbers
  const asFloat = await embedder.embeddings.create({ model: embedModel, input: 'the quick brown fox', encoding_format: 'float' });
  asFloat.data[0].embedding.forEach((x, i) => assert.ok(Math.abs(x - v[i]) < 1e-6, `value ${i}: ${x} vs ${v[i]}`));
  const many = await embedder.embeddings.create({ model: embedModel, input: ['hello', 'the quick brown fox'] });
  assert.deepEqual(many.data.map((d) => d.index), [0, 1]);
  const cos = many.data[1].embedding.reduce((s, x, i) => s + x * v[i], 0);
  assert.ok(cos > 1 - 1e-5, `same text alone and in an array: cosine ${cos}`);
  await assert.rejects(
    embedder.embeddings.create({ model: embedModel, input: ['ok', ''] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'input[1]',
  );
});
