// Runs the reference ONNX export (export_onnx.py) in onnxruntime-node: encoder, cross K/V, then
// NeMo's default decoding with beam 1 (argmax, generated tokens at their true positions P, P+1, ...,
// with the decoder KV cache, NeMo's stopping rule). Writes encoder_states.f32, log_probs_first_steps.f32 and result.json.
//
//   node run_ort.mjs --onnx DIR --features F.f32 --n-mels 128 --frames T --length N \
//        --prompt 7,4,16 --eos 3 --max-gen 250 [--steps 4] [--repeat R] --out DIR
//
// --repeat R runs the whole pipeline R times and reports per-run wall time (benchmark use only;
// the parity check never looks at time). --batch B (benchmark only) then also decodes B copies of
// the features as one batch for exactly --max-gen + 1 steps (EOS ignored) and reports its times.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';

function args() {
  const a = process.argv.slice(2);
  const o = {};
  for (let i = 0; i < a.length; i += 2) {
    if (!a[i].startsWith('--') || i + 1 >= a.length) throw new Error(`bad argument ${a[i]}`);
    o[a[i].slice(2)] = a[i + 1];
  }
  for (const k of ['onnx', 'features', 'n-mels', 'frames', 'length', 'prompt', 'eos', 'max-gen', 'out']) {
    if (!(k in o)) throw new Error(`missing --${k}`);
  }
  return o;
}

function readF32(file, count) {
  const buf = fs.readFileSync(file);
  if (buf.length !== count * 4) throw new Error(`${file}: ${buf.length} bytes, expected ${count * 4}`);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = buf.readFloatLE(i * 4);
  return out;
}

function writeF32(file, data) {
  const buf = Buffer.alloc(data.length * 4);
  for (let i = 0; i < data.length; i++) buf.writeFloatLE(data[i], i * 4);
  fs.writeFileSync(file, buf);
}

const i64 = (vals, dims) => new ort.Tensor('int64', BigInt64Array.from(vals.map(BigInt)), dims);

async function main() {
  const o = args();
  const info = JSON.parse(fs.readFileSync(path.join(o.onnx, 'export.json'), 'utf8'));
  const opts = { intraOpNumThreads: Number(o.threads || 1), interOpNumThreads: 1, graphOptimizationLevel: 'all' };
  const enc = await ort.InferenceSession.create(path.join(o.onnx, 'encoder.onnx'), opts);
  const cross = await ort.InferenceSession.create(path.join(o.onnx, 'cross_kv.onnx'), opts);
  const step = await ort.InferenceSession.create(path.join(o.onnx, 'decoder_step.onnx'), opts);
  const nMels = Number(o['n-mels']);
  const T = Number(o.frames);
  const feats = readF32(o.features, nMels * T);
  const prompt = o.prompt.split(',').map(Number);
  const eos = Number(o.eos);
  const maxGen = Number(o['max-gen']);
  const nSteps = Number(o.steps || 4);
  const repeat = Number(o.repeat || 1);
  const times = [];
  const encTimes = [];
  let result;
  for (let r = 0; r < repeat; r++) {
    const t0 = process.hrtime.bigint();
    const e = await enc.run({
      features: new ort.Tensor('float32', feats, [1, nMels, T]),
      feature_lengths: i64([Number(o.length)], [1]),
    });
    const states = e.encoder_states;
    const encLen = Number(e.encoder_lengths.data[0]);
    const Tenc = states.dims[1];
    const ckv = await cross.run({ encoder_states: states });
    encTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const mask = new Float32Array(Tenc);
    for (let t = 0; t < Tenc; t++) mask[t] = t < encLen ? 1 : 0;
    const maskT = new ort.Tensor('float32', mask, [1, Tenc]);
    const { decoder_layers: nl, decoder_heads: h, head_dim: dk } = info;
    let pastK = new ort.Tensor('float32', new Float32Array(0), [nl, 1, h, 0, dk]);
    let pastV = pastK;
    // NeMo beam 1: the prompt step yields the first token, then up to maxGen more at positions P, P+1, ...
    let ids = prompt.slice();
    let pos = 0;
    const out = [];
    const firstSteps = [];
    for (let s = 0; s <= maxGen; s++) {
      const feed = s === 0 ? prompt : [out[out.length - 1]];
      const res = await step.run({
        input_ids: i64(feed, [1, feed.length]), start_pos: i64([pos], [1]), past_k: pastK, past_v: pastV,
        cross_k: ckv.cross_k, cross_v: ckv.cross_v, encoder_mask: maskT,
      });
      pos += feed.length;
      pastK = res.present_k;
      pastV = res.present_v;
      const lp = res.log_probs.data;
      if (firstSteps.length < nSteps) firstSteps.push(Float32Array.from(lp));
      let best = 0;
      for (let v = 1; v < lp.length; v++) if (lp[v] > lp[best]) best = v;
      out.push(best);
      // NeMo's beam search starts its "finished" flags at zero after the prompt step, so an EOS
      // chosen there does not end decoding; any later EOS does.
      if (best === eos && s > 0) break;
    }
    ids = ids.concat(out);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    result = { states, encLen, Tenc, out, firstSteps };
  }
  const batch = o.batch ? await runBatch(Number(o.batch), enc, cross, step, info, feats, nMels, T, Number(o.length),
    prompt, maxGen, repeat) : null;
  fs.mkdirSync(o.out, { recursive: true });
  writeF32(path.join(o.out, 'encoder_states.f32'), result.states.data);
  const vocab = result.firstSteps[0].length;
  const flat = new Float32Array(result.firstSteps.length * vocab);
  result.firstSteps.forEach((row, i) => flat.set(row, i * vocab));
  writeF32(path.join(o.out, 'log_probs_first_steps.f32'), flat);
  const gen = result.out.slice();
  while (gen.length && gen[gen.length - 1] === eos) gen.pop();
  fs.writeFileSync(path.join(o.out, 'result.json'), JSON.stringify({
    onnxruntime: ort.env.versions ? ort.env.versions : null,
    encoder_states_shape: result.states.dims, encoder_length: result.encLen,
    log_probs_shape: [result.firstSteps.length, vocab], beam1_ids: gen, wall_ms: times, enc_ms: encTimes, batch,
  }));
}

// B copies of one utterance as a batch, maxGen + 1 decoder steps, argmax per row: the work of
// `canary-stt bench` at batch B (benchmark only).
async function runBatch(B, enc, cross, step, info, feats, nMels, T, len, prompt, maxGen, repeat) {
  const fb = new Float32Array(B * nMels * T);
  for (let b = 0; b < B; b++) fb.set(feats, b * nMels * T);
  const out = { n: B, wall_ms: [], enc_ms: [] };
  for (let r = 0; r < repeat; r++) {
    const t0 = process.hrtime.bigint();
    const e = await enc.run({
      features: new ort.Tensor('float32', fb, [B, nMels, T]),
      feature_lengths: i64(Array(B).fill(len), [B]),
    });
    const Tenc = e.encoder_states.dims[1];
    const ckv = await cross.run({ encoder_states: e.encoder_states });
    out.enc_ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const mask = new Float32Array(B * Tenc);
    for (let b = 0; b < B; b++)
      for (let t = 0; t < Tenc; t++) mask[b * Tenc + t] = t < Number(e.encoder_lengths.data[b]) ? 1 : 0;
    const { decoder_layers: nl, decoder_heads: h, head_dim: dk } = info;
    let pastK = new ort.Tensor('float32', new Float32Array(0), [nl, B, h, 0, dk]);
    let pastV = pastK;
    let last = null;
    let pos = 0;
    for (let s = 0; s <= maxGen; s++) {
      const feed = s === 0 ? Array(B).fill(prompt).flat() : last;
      const L = s === 0 ? prompt.length : 1;
      const res = await step.run({
        input_ids: i64(feed, [B, L]), start_pos: i64([pos], [1]), past_k: pastK, past_v: pastV,
        cross_k: ckv.cross_k, cross_v: ckv.cross_v, encoder_mask: new ort.Tensor('float32', mask, [B, Tenc]),
      });
      pos += L;
      pastK = res.present_k;
      pastV = res.present_v;
      const lp = res.log_probs.data;
      const V = lp.length / B;
      last = [];
      for (let b = 0; b < B; b++) {
        let best = 0;
        for (let v = 1; v < V; v++) if (lp[b * V + v] > lp[b * V + best]) best = v;
        last.push(best);
      }
    }
    out.wall_ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return out;
}

main().catch((e) => { console.error(`run_ort: ${e.message}`); process.exit(1); });
