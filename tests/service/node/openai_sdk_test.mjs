// The official OpenAI SDK (npm `openai`), unmodified, against canary-stt serve.
// node openai_sdk_test.mjs BASE_URL API_KEY WAV_2S
import fs from 'node:fs';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const [baseURL, apiKey, wav] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey, maxRetries: 0 });
let passed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    console.log(`not ok - ${name}: ${e.stack || e}`);
    process.exitCode = 1;
  }
}
const file = () => fs.createReadStream(wav); // a stream: the SDK sends a chunked upload

await check('json', async () => {
  const r = await client.audio.transcriptions.create({ file: file(), model: 'whisper-1' });
  assert.equal(r.text, 'Chunk 1 of 2. Chunk 2 of 2.');
});
await check('text', async () => {
  const r = await client.audio.transcriptions.create({ file: file(), model: 'whisper-1', response_format: 'text' });
  assert.equal(r, 'Chunk 1 of 2. Chunk 2 of 2.\n');
});
await check('srt', async () => {
  const r = await client.audio.transcriptions.create({ file: file(), model: 'whisper-1', response_format: 'srt' });
  assert.equal(r, '1\n00:00:00,000 --> 00:00:01,000\nChunk 1 of 2.\n\n2\n00:00:01,000 --> 00:00:02,000\nChunk 2 of 2.\n\n');
});
await check('vtt', async () => {
  const r = await client.audio.transcriptions.create({ file: file(), model: 'whisper-1', response_format: 'vtt' });
  assert.equal(r, 'WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nChunk 1 of 2.\n\n00:00:01.000 --> 00:00:02.000\nChunk 2 of 2.\n\n');
});
await check('verbose_json with word and segment timestamps', async () => {
  const r = await client.audio.transcriptions.create({
    file: file(), model: 'whisper-1', response_format: 'verbose_json', language: 'de',
    timestamp_granularities: ['word', 'segment'],
  });
  assert.equal(r.language, 'de');
  assert.equal(r.duration, 2);
  assert.equal(r.segments.length, 2);
  assert.equal(r.segments[1].start, 1);
  assert.equal(r.words.length, 8);
  assert.deepEqual(r.words[2], { word: 'of', start: 0.5, end: 0.75 });
});
await check('translation', async () => {
  const r = await client.audio.translations.create({ file: file(), model: 'whisper-1', response_format: 'text' });
  assert.equal(r, 'Chunk 1 of 2 (en). Chunk 2 of 2 (en).\n');
});
await check('extra fields (target_language, pnc) pass through', async () => {
  const r = await client.audio.transcriptions.create({ file: file(), model: 'whisper-1', target_language: 'fr', pnc: 'false' });
  assert.equal(r.text, 'Chunk 1 of 2. Chunk 2 of 2.');
});
await check('bad parameter is a 400 BadRequestError naming the param', async () => {
  await assert.rejects(
    client.audio.transcriptions.create({ file: file(), model: 'whisper-1', temperature: 3 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'temperature',
  );
});
await check('a wrong key is a 401 AuthenticationError', async () => {
  const bad = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(bad.audio.transcriptions.create({ file: file(), model: 'whisper-1' }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
});
await check('models.list', async () => {
  const page = await client.models.list();
  assert.equal(page.data[0].id, 'test/fake-canary');
});
console.log(`${passed} passed`);
