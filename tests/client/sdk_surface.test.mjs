// The wider surface of the official openai package against `hearth serve`, used the way
// applications use it: model retrieval and paging, several choices, logprobs, sampling
// fields, the stream helpers, raw responses, completions, tools, refused features and the
// typed errors of malformed fields, embeddings through the SDK's base64 default.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.env.HEARTH_URL, apiKey: 'unused', maxRetries: 0, timeout: 60000 });
const model = process.env.HEARTH_MODEL;
const messages = [{ role: 'user', content: 'Write one line about the sea.' }];
const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

const withoutCache = (u) => ({ ...u, prompt_tokens_details: undefined });

test('models.retrieve and the list page', async () => {
  const m = await client.models.retrieve(model);
  assert.equal(m.id, model);
  assert.equal(m.object, 'model');
  assert.equal(typeof m.created, 'number');
  assert.equal(typeof m.owned_by, 'string');
  await assert.rejects(client.models.retrieve('no-such-model'),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found');
  const page = await client.models.list();
  assert.deepEqual(page.data.map((x) => x.id), [model]);
  assert.equal(page.hasNextPage(), false);
});

test('chat n=2: indexes, finish reasons, per-choice seeds, streamed equal to plain', async () => {
  const req = { model, messages, n: 2, max_tokens: 6, temperature: 1, seed: 7, ignore_eos: true };
  const plain = await client.chat.completions.create(req);
  assert.deepEqual(plain.choices.map((c) => c.index), [0, 1]);
  assert.deepEqual(plain.choices.map((c) => c.finish_reason), ['length', 'length']);
  assert.equal(plain.usage.completion_tokens, 12);
  // choice i samples with seed + i: choice 1 is what a single choice with seed 8 gives
  const single = await client.chat.completions.create({ ...req, n: 1, seed: 8 });
  assert.equal(plain.choices[1].message.content, single.choices[0].message.content);

  const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  const text = ['', ''];
  const finishes = [[], []];
  let usage = null;
  let last = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      text[c.index] += c.delta.content ?? '';
      if (c.finish_reason) finishes[c.index].push(c.finish_reason);
    }
    if (chunk.usage) usage = chunk.usage;
    last = chunk;
  }
  assert.deepEqual(text, plain.choices.map((c) => c.message.content));
  assert.deepEqual(finishes, [['length'], ['length']]);
  // the usage chunk comes last, with no choices
  assert.deepEqual(last.choices, []);
  assert.deepEqual(withoutCache(usage), withoutCache(plain.usage));
});

test('chat logprobs with top_logprobs: OpenAI shape, greedy token first, streamed equal', async () => {
  const req = { model, messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 };
  const r = await client.chat.completions.create(req);
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  assert.equal(content.map((c) => c.token).join(''), r.choices[0].message.content);
  for (const c of content) {
    assert.equal(typeof c.token, 'string');
    assert.ok(c.logprob <= 0, `logprob ${c.logprob}`);
    assert.deepEqual(Buffer.from(c.bytes).toString('utf8'), c.token);
    assert.equal(c.top_logprobs.length, 3);
    for (let k = 1; k < 3; k++) assert.ok(c.top_logprobs[k - 1].logprob >= c.top_logprobs[k].logprob);
    // temperature 0 picks the most likely token
    assert.equal(c.top_logprobs[0].token, c.token);
    assert.equal(c.top_logprobs[0].logprob, c.logprob);
    for (const t of c.top_logprobs) assert.deepEqual(Object.keys(t).sort(), ['bytes', 'logprob', 'token']);
  }
  const stream = await client.chat.completions.create({ ...req, stream: true });
  const streamed = [];
  for await (const chunk of stream) for (const c of chunk.choices) streamed.push(...(c.logprobs?.content ?? []));
  assert.deepEqual(streamed, content);
  await assert.rejects(client.chat.completions.create({ ...req, top_logprobs: 21 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'top_logprobs');
});

test('chat sampling fields: max_completion_tokens, seed, stop list, top_p, logit_bias, penalties, user', async () => {
  const mct = await client.chat.completions.create({ model, messages, max_completion_tokens: 3, temperature: 0 });
  assert.equal(mct.usage.completion_tokens, 3);
  assert.equal(mct.choices[0].finish_reason, 'length');

  const seeded = { model, messages, max_tokens: 10, temperature: 1, seed: 42, user: 'user-1234' };
  const a = await client.chat.completions.create(seeded);
  const b = await client.chat.completions.create(seeded);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  assert.equal(a.system_fingerprint, b.system_fingerprint);

  // a vanishing top_p keeps only the most likely token: temperature 1 gives the greedy text
  const greedy = await client.chat.completions.create({ model, messages, max_tokens: 10, temperature: 0 });
  const nucleus = await client.chat.completions.create({ model, messages, max_tokens: 10, temperature: 1, top_p: 1e-6, seed: 3 });
  assert.equal(nucleus.choices[0].message.content, greedy.choices[0].message.content);

  const text = greedy.choices[0].message.content;
  const stops = [text.slice(6, 8), text.slice(3, 5)];
  const cut = await client.chat.completions.create({ model, messages, max_tokens: 10, temperature: 0, stop: stops });
  const at = Math.min(...stops.map((s) => text.indexOf(s)));
  assert.equal(cut.choices[0].message.content, text.slice(0, at));
  assert.equal(cut.choices[0].finish_reason, 'stop');

  // +15 on one token makes it frequent; each penalty makes it rarer
  const count = async (extra) => {
    const r = await client.chat.completions.create({
      model, messages, max_tokens: 30, temperature: 0, logit_bias: { 1000: 15 }, logprobs: true, ...extra,
    });
    const toks = r.choices[0].logprobs.content.map((c) => c.token);
    return Math.max(...toks.map((t) => toks.filter((z) => z === t).length));
  };
  const plainCount = await count({});
  assert.ok(plainCount >= 5, `biased token appears ${plainCount} times`);
  const freq = await count({ frequency_penalty: 2 });
  const pres = await count({ presence_penalty: 2 });
  assert.ok(freq < plainCount, `frequency_penalty: ${freq} vs ${plainCount}`);
  assert.ok(pres < plainCount, `presence_penalty: ${pres} vs ${plainCount}`);

  // +100 forces the token everywhere
  const forced = await client.chat.completions.create({
    model, messages, max_tokens: 4, temperature: 0, logit_bias: { 1000: 100 }, logprobs: true,
  });
  const toks = forced.choices[0].logprobs.content.map((c) => c.token);
  assert.equal(new Set(toks).size, 1, `tokens ${JSON.stringify(toks)}`);
});

test('stream helper: content events and finalChatCompletion', async () => {
  const plain = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0 });
  const runner = client.chat.completions.stream({ model, messages, max_tokens: 8, temperature: 0 });
  let deltas = '';
  let chunks = 0;
  runner.on('content', (delta) => { deltas += delta; });
  runner.on('chunk', () => { chunks++; });
  const final = await runner.finalChatCompletion();
  assert.equal(deltas, plain.choices[0].message.content);
  assert.equal(final.choices[0].message.content, plain.choices[0].message.content);
  assert.equal(final.choices[0].finish_reason, 'length');
  assert.equal(final.choices[0].message.role, 'assistant');
  assert.ok(chunks >= 3, `chunks ${chunks}`);
  assert.equal(await runner.finalContent(), plain.choices[0].message.content);

  // several choices, logprobs and usage through the helper's accumulation
  const many = client.chat.completions.stream({
    model, messages, max_tokens: 4, temperature: 0, n: 2, logprobs: true, top_logprobs: 1,
    stream_options: { include_usage: true },
  });
  const fin = await many.finalChatCompletion();
  assert.equal(fin.choices.length, 2);
  for (const c of fin.choices) {
    assert.equal(c.finish_reason, 'length');
    assert.equal(c.logprobs.content.length, 4);
    assert.equal(c.logprobs.content.map((x) => x.token).join(''), c.message.content);
  }
  assert.equal(fin.usage.completion_tokens, 8);
});

test('withResponse and asResponse: status, content type, request id', async () => {
  const { data, response, request_id } = await client.chat.completions
    .create({ model, messages, max_tokens: 2 }).withResponse();
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^application\/json/);
  assert.ok(request_id && request_id === response.headers.get('x-request-id'), `request id ${request_id}`);
  assert.equal(data._request_id, request_id);
  // the client's own id comes back
  const own = await client.chat.completions
    .create({ model, messages, max_tokens: 2 }, { headers: { 'X-Request-Id': 'sdk-test-42' } }).withResponse();
  assert.equal(own.response.headers.get('x-request-id'), 'sdk-test-42');

  const raw = await client.chat.completions.create({ model, messages, max_tokens: 2, stream: true }).asResponse();
  assert.equal(raw.status, 200);
  assert.match(raw.headers.get('content-type'), /^text\/event-stream/);
  assert.ok(raw.headers.get('x-request-id'));
  const body = await raw.text();
  assert.ok(body.startsWith('data: {'), body.slice(0, 40));
  assert.ok(body.endsWith('data: [DONE]\n\n'), body.slice(-40));
});

test('completions: streamed equal to plain, n, logprobs shape, echo, suffix refused', async () => {
  const req = { model, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 };
  const plain = await client.completions.create({ ...req, logprobs: 2 });
  const lp = plain.choices[0].logprobs;
  assert.equal(lp.tokens.join(''), plain.choices[0].text);
  assert.equal(lp.token_logprobs.length, 8);
  // as OpenAI: characters from the start of the prompt
  const chars = (t) => [...t].length;
  assert.deepEqual(lp.text_offset, lp.tokens.map((_, i) => chars(req.prompt) + chars(lp.tokens.slice(0, i).join(''))));
  for (const [i, top] of lp.top_logprobs.entries()) {
    assert.equal(Object.keys(top).length, 2);
    assert.equal(Math.max(...Object.values(top)), lp.token_logprobs[i]);
  }
  const stream = await client.completions.create({ ...req, n: 2, stream: true, stream_options: { include_usage: true } });
  const text = ['', ''];
  let usage = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) text[c.index] += c.text;
    if (chunk.usage) usage = chunk.usage;
  }
  assert.deepEqual(text, [plain.choices[0].text, plain.choices[0].text]);
  assert.equal(usage.completion_tokens, 16);
  // echo: the prompt opens the text, plain and streamed
  const echoed = await client.completions.create({ ...req, echo: true });
  assert.equal(echoed.choices[0].text, req.prompt + plain.choices[0].text);
  const echoStream = await client.completions.create({ ...req, echo: true, stream: true });
  let echoText = '';
  for await (const chunk of echoStream) for (const c of chunk.choices) echoText += c.text;
  assert.equal(echoText, req.prompt + plain.choices[0].text);
  const idsEcho = await client.completions.create({ ...req, prompt: [1, 9038, 2501], echo: true, max_tokens: 2 });
  assert.ok(idsEcho.choices[0].text.length > 2, idsEcho.choices[0].text);
  // with logprobs it needs the prompt's log probabilities: refused
  await assert.rejects(client.completions.create({ ...req, echo: true, logprobs: 1 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'echo');
  await assert.rejects(client.completions.create({ ...req, suffix: ' the end.' }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'suffix');
});

test('a request deadline reached mid-stream ends the SDK iteration with an APIError', async () => {
  // `timeout` (seconds) is the server's per-request deadline extension
  const stream = await client.chat.completions.create({
    model, messages, max_tokens: 2000, ignore_eos: true, stream: true, timeout: 0.3,
  }).catch((e) => e);
  let err = stream;
  let chunks = 0;
  if (!(stream instanceof Error)) {
    try {
      for await (const _ of stream) chunks++;
      err = null;
    } catch (e) {
      err = e;
    }
  }
  // a slow first token gives a 504 before any byte instead: the same error, earlier
  assert.ok(err instanceof OpenAI.APIError, `${err} after ${chunks} chunks`);
  assert.equal(err.code, 'timeout');
  assert.ok(chunks < 2000);
});

test('response_format other than text is refused, never ignored', async () => {
  const ok = await client.chat.completions.create({ model, messages, max_tokens: 2, response_format: { type: 'text' } });
  assert.equal(ok.choices.length, 1);
  for (const rf of [{ type: 'json_object' }, { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' } } }]) {
    await assert.rejects(client.chat.completions.create({ model, messages, max_tokens: 2, response_format: rf }),
      (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'response_format.type');
  }
});

test('tools: rendered for auto, left out for none, history accepted, streamed equal', async () => {
  const base = { model, messages, max_tokens: 6, temperature: 0 };
  const without = await client.chat.completions.create(base);
  const auto = await client.chat.completions.create({ ...base, tools: [weatherTool], tool_choice: 'auto', parallel_tool_calls: false });
  // the template lists the tools: the prompt grows by the tool's signature
  assert.ok(auto.usage.prompt_tokens > without.usage.prompt_tokens + 20,
    `prompt tokens ${auto.usage.prompt_tokens} with tools vs ${without.usage.prompt_tokens}`);
  const msg = auto.choices[0].message;
  assert.ok(msg.tool_calls === undefined || Array.isArray(msg.tool_calls));
  assert.ok(['stop', 'length', 'tool_calls'].includes(auto.choices[0].finish_reason));
  const none = await client.chat.completions.create({ ...base, tools: [weatherTool], tool_choice: 'none' });
  assert.equal(none.usage.prompt_tokens, without.usage.prompt_tokens);

  const stream = await client.chat.completions.create({ ...base, tools: [weatherTool], stream: true });
  let text = '';
  for await (const chunk of stream) for (const c of chunk.choices) text += c.delta.content ?? '';
  assert.equal(text, msg.content ?? '');

  const otherTool = { type: 'function', function: { name: 'get_time', parameters: { type: 'object' } } };
  await assert.rejects(client.chat.completions.create({ ...base, tools: [weatherTool, otherTool], tool_choice: 'required' }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'tool_choice' && /not supported/.test(e.message));
  await assert.rejects(
    client.chat.completions.create({ ...base, tools: [weatherTool], tool_choice: { type: 'function', function: { name: 'nope' } } }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'tool_choice');
  await assert.rejects(
    client.chat.completions.create({ ...base, tools: [{ type: 'function', function: { name: 'bad name!' } }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'tools[0].function.name');

  // a conversation that went through a tool call
  const history = [
    { role: 'user', content: 'Weather in Oslo?' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] },
    { role: 'tool', tool_call_id: 'call_1', content: '12 C, rain' },
  ];
  const after = await client.chat.completions.create({ model, messages: history, tools: [weatherTool], max_tokens: 4, temperature: 0 });
  assert.equal(after.choices[0].message.role, 'assistant');
  const noCall = await client.chat.completions.create({ model, messages: [history[0], history[2]], tools: [weatherTool], max_tokens: 4, temperature: 0 });
  assert.ok(after.usage.prompt_tokens > noCall.usage.prompt_tokens, 'the earlier tool call is part of the prompt');
});

test('tool_choice naming a function: the reply is a call to it, plain, streamed and through the helper', async () => {
  const otherTool = { type: 'function', function: { name: 'get_time', parameters: { type: 'object' } } };
  const req = {
    model, messages: [{ role: 'user', content: 'Weather in Oslo?' }], max_tokens: 8, temperature: 0,
    tools: [otherTool, weatherTool], tool_choice: { type: 'function', function: { name: 'get_weather' } },
  };
  const plain = await client.chat.completions.create(req);
  const msg = plain.choices[0].message;
  assert.equal(msg.content, null);
  assert.equal(msg.tool_calls.length, 1);
  const call = msg.tool_calls[0];
  assert.match(call.id, /^call_[A-Za-z0-9]{24}$/);
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.equal(typeof call.function.arguments, 'string'); // the model's text: a random model's is not JSON
  // a random model never closes the call: cut by max_tokens (a closed call finishes with "tool_calls")
  assert.equal(plain.choices[0].finish_reason, 'length');
  assert.equal(plain.usage.completion_tokens, 8);

  const stream = await client.chat.completions.create({ ...req, stream: true });
  let head = null;
  let args = '';
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      assert.ok(!c.delta.content, `content ${c.delta.content}`);
      for (const t of c.delta.tool_calls ?? []) {
        assert.equal(t.index, 0);
        if (t.id) head = t;
        args += t.function?.arguments ?? '';
      }
    }
  }
  assert.equal(head.function.name, 'get_weather');
  assert.equal(head.type, 'function');
  assert.equal(args, call.function.arguments);

  const final = await client.chat.completions.stream(req).finalChatCompletion();
  assert.equal(final.choices[0].message.tool_calls[0].function.name, 'get_weather');
  assert.equal(final.choices[0].message.tool_calls[0].function.arguments, call.function.arguments);

  // a call that ends (here at the user's stop string) finishes with "tool_calls", plain and
  // streamed; its arguments are the text before the stop (a '}' there is the model's, not
  // the call's close: only the call's own end drops that brace)
  const stop = call.function.arguments.slice(5, 7);
  const ended = await client.chat.completions.create({ ...req, stop: [stop] });
  const expected = call.function.arguments.slice(0, call.function.arguments.indexOf(stop)).replace(/[ \n\r\t]+$/, '');
  assert.equal(ended.choices[0].finish_reason, 'tool_calls');
  assert.equal(ended.choices[0].message.tool_calls[0].function.arguments, expected);
  const endedStream = await client.chat.completions.stream({ ...req, stop: [stop] }).finalChatCompletion();
  assert.equal(endedStream.choices[0].finish_reason, 'tool_calls');
  assert.equal(endedStream.choices[0].message.tool_calls[0].function.arguments, expected);

  // "required" with one tool calls that tool
  const required = await client.chat.completions.create({ ...req, tools: [weatherTool], tool_choice: 'required' });
  assert.equal(required.choices[0].message.tool_calls[0].function.name, 'get_weather');
});

test('malformed fields: BadRequestError naming each one, never a server error', async () => {
  const cases = [
    [{ temperature: 'hot' }, 'temperature'],
    [{ top_p: 2 }, 'top_p'],
    [{ n: 0 }, 'n'],
    [{ n: 9 }, 'n'],
    [{ max_tokens: 0 }, 'max_tokens'],
    [{ max_completion_tokens: -5 }, 'max_completion_tokens'],
    [{ stop: 5 }, 'stop'],
    [{ logit_bias: { x: 1 } }, 'logit_bias'],
    [{ logit_bias: { 5: 500 } }, 'logit_bias'],
    [{ logprobs: 'yes' }, 'logprobs'],
    [{ top_logprobs: 2 }, 'top_logprobs'],
    [{ presence_penalty: 3 }, 'presence_penalty'],
    [{ frequency_penalty: -3 }, 'frequency_penalty'],
    [{ seed: 'abc' }, 'seed'],
    [{ stream_options: { include_usage: true } }, 'stream_options'],
    [{ user: 5 }, 'user'],
    [{ tools: {} }, 'tools'],
    [{ tool_choice: 'always' }, 'tool_choice'],
    [{ parallel_tool_calls: 'yes' }, 'parallel_tool_calls'],
    [{ functions: [{ name: 'f' }] }, 'functions'],
    [{ modalities: ['text', 'audio'] }, 'modalities'],
    [{ messages: [] }, 'messages'],
    [{ messages: [{ role: 'user' }] }, 'messages[0].content'],
    [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x/y.png' } }] }] }, 'messages[0].content'],
  ];
  for (const [fields, param] of cases) {
    await assert.rejects(client.chat.completions.create({ model, messages, max_tokens: 2, ...fields }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `${JSON.stringify(fields)}: ${e.constructor.name} ${e.status} ${e.message}`);
      assert.equal(e.param, param, JSON.stringify(fields));
      assert.equal(e.type, 'invalid_request_error');
      return true;
    });
  }
});

test('embeddings through the SDK: base64 default decoded, dimensions', async () => {
  const embedder = new OpenAI({ baseURL: process.env.HEARTH_EMBED_URL, apiKey: 'unused', maxRetries: 0, timeout: 60000 });
  const embedModel = process.env.HEARTH_EMBED_MODEL;
  const input = 'a lighthouse on a rock';
  const full = await embedder.embeddings.create({ model: embedModel, input, encoding_format: 'float' });
  const cut = await embedder.embeddings.create({ model: embedModel, input, dimensions: 64 });
  const v = cut.data[0].embedding;
  assert.ok(Array.isArray(v), 'the SDK decodes base64 into numbers');
  assert.equal(v.length, 64);
  assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-4, `norm ${Math.hypot(...v)}`);
  // the first 64 values of the full vector, renormalised
  const head = full.data[0].embedding.slice(0, 64);
  const n = Math.hypot(...head);
  head.forEach((x, i) => assert.ok(Math.abs(x / n - v[i]) < 1e-5, `value ${i}: ${x / n} vs ${v[i]}`));
  const asFloat = await embedder.embeddings.create({ model: embedModel, input, dimensions: 64, encoding_format: 'float' });
  asFloat.data[0].embedding.forEach((x, i) => assert.ok(Math.abs(x - v[i]) < 1e-6));
  for (const dimensions of [0, 100000]) {
    await assert.rejects(embedder.embeddings.create({ model: embedModel, input, dimensions }),
      (e) => e instanceof OpenAI.BadRequestError && e.param === 'dimensions');
  }
});
