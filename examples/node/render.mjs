// Render a DTGAN clip outside Python: the exported ONNX graphs run by onnxruntime-node.
//
//   node render.mjs EXPORT_DIR target.npy source.npy out.npy [--chunk 16]
//
// EXPORT_DIR is what `dtgan export CHECKPOINT --format onnx -o EXPORT_DIR` wrote (four .onnx
// files and manifest.json). target.npy is one image (3, S, S) and source.npy the source frames
// (T, 3, S, S), both float32 RGB in [0, 1] at the model's resolution S; frame 0 of the source is
// the reference frame. out.npy receives the rendered frames (T, 3, S, S) in [0, 1].
// The only dependency is onnxruntime-node; .npy files are read and written here.

import { readFileSync, writeFileSync, renameSync } from "node:fs";
import path from "node:path";
import ort from "onnxruntime-node";

/** Parse a little-endian float32, C-order .npy file → { data: Float32Array, shape: number[] }. */
function readNpy(file) {
  const buf = readFileSync(file);
  if (buf.toString("latin1", 0, 6) !== "\x93NUMPY") throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString("latin1", start, start + headerLen);
  if (!/'descr':\s*'<f4'/.test(header)) throw new Error(`${file}: expected float32 ('<f4') data`);
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: expected C order`);
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1]
    .split(",").map((s) => s.trim()).filter((s) => s.length).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const bytes = buf.subarray(start + headerLen, start + headerLen + 4 * count);
  // copy into an aligned buffer: the data offset need not be a multiple of 4
  const data = new Float32Array(count);
  new Uint8Array(data.buffer).set(bytes);
  return { data, shape };
}

/** Write a float32 .npy (version 1.0) atomically: a temporary name, renamed when complete. */
function writeNpy(file, data, shape) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(", ")},), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header = header + " ".repeat(pad % 64) + "\n";
  const head = Buffer.alloc(10);
  head.write("\x93NUMPY", 0, "latin1");
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.partial-${process.pid}`);
  writeFileSync(tmp, Buffer.concat([head, Buffer.from(header, "latin1"), body]));
  renameSync(tmp, file);
}

/** [0, 1] RGB → the model's [-1, 1] input range (manifest: normalisation.frames_in). */
function toModel(x) {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = 2 * Math.min(Math.max(x[i], 0), 1) - 1;
  return out;
}

/** The model's [-1, 1] output → [0, 1] RGB (manifest: normalisation.frames_out). */
function fromModel(y, out, offset) {
  for (let i = 0; i < y.length; i++) out[offset + i] = Math.min(Math.max((y[i] + 1) * 0.5, 0), 1);
}

async function loadExport(dir) {
  const manifest = JSON.parse(readFileSync(path.join(dir, "manifest.json"), "utf8"));
  if (manifest.format !== "dtgan-onnx") throw new Error(`${dir}: not a dtgan-onnx export`);
  const sessions = {};
  for (const [name, entry] of Object.entries(manifest.graphs)) {
    sessions[name] = await ort.InferenceSession.create(path.join(dir, entry.file));
  }
  return { manifest, sessions };
}

async function main(argv) {
  const args = argv.slice(2);
  const at = args.indexOf("--chunk");
  const chunk = at >= 0 ? Number(args.splice(at, 2)[1]) : 16;
  if (args.length !== 4 || !(chunk >= 1)) {
    console.error("usage: node render.mjs EXPORT_DIR target.npy source.npy out.npy [--chunk N]");
    process.exit(2);
  }
  const [dir, targetFile, sourceFile, outFile] = args;
  const { manifest, sessions } = await loadExport(dir);
  const S = manifest.resolution, D = manifest.dyn_dim, rows = manifest.state_rows_per_clip;
  const frameSize = 3 * S * S;
  const target = readNpy(targetFile), source = readNpy(sourceFile);
  if (target.data.length !== frameSize || source.shape.slice(1).join() !== [3, S, S].join()) {
    throw new Error(`target must be (3, ${S}, ${S}) and source (T, 3, ${S}, ${S})`);
  }
  const T = source.shape[0];

  // 1. per target: its features, reused for every chunk
  const targetT = new ort.Tensor("float32", toModel(target.data), [1, 3, S, S]);
  const feats = await sessions.target_encoder.run({ target: targetT });
  // 2. per source: the reference frame (frame 0) and the initial encoder state
  const reference = new ort.Tensor("float32", toModel(source.data.subarray(0, frameSize)),
    [1, 3, S, S]);
  const { phi_ref } = await sessions.encoder_reference.run({ reference });
  let h = new ort.Tensor("float32", new Float32Array(rows * D), [1, rows, D]);
  let c = new ort.Tensor("float32", new Float32Array(rows * D), [1, rows, D]);
  let statik = new ort.Tensor("bool", new Uint8Array([1]), [1]);

  // 3. stream: encoder step (state carried) then renderer, chunk by chunk
  const out = new Float32Array(T * frameSize);
  for (let a = 0; a < T; a += chunk) {
    const t = Math.min(chunk, T - a);
    const frames = new ort.Tensor("float32",
      toModel(source.data.subarray(a * frameSize, (a + t) * frameSize)), [1, t, 3, S, S]);
    const all = { frames, reference, phi_ref, h, c, static: statik };
    // the manifest lists what this graph reads (a raw-dynamics model reads no reference)
    const feeds = Object.fromEntries(
      sessions.encoder_step.inputNames.map((name) => [name, all[name]]));
    const step = await sessions.encoder_step.run(feeds);
    h = step.h_out; c = step.c_out; statik = step.static_out;
    const dynamics = new ort.Tensor("float32", step.dynamics.data, [t, D]);
    const { frames: rendered } = await sessions.renderer.run({ dynamics, target: targetT, ...feats });
    fromModel(rendered.data, out, a * frameSize);
  }
  writeNpy(outFile, out, [T, 3, S, S]);
  console.log(`wrote ${T} frames (${S}x${S}) to ${outFile}`);
}

main(process.argv).catch((err) => {
  console.error(`render.mjs: ${err.message}`);
  process.exit(1);
});
