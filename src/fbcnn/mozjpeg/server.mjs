// MozJPEG under node for fbcnn.jpeg.encoders: requests come on stdin, each a header of eight
// little-endian int32 (width, height, channels 1|3, quality, quant_table, luma sampling
// factor 1 (4:4:4) or 2 (4:2:0), -1 for the encoder's own choice, trellis 0|1, unused) followed by
// width*height*channels pixel bytes; each answer is a uint32 length and the JPEG bytes
// (length 0: the encoder failed, its message on stderr).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import encode, { init } from '@jsquash/jpeg/encode.js';

const require = createRequire(import.meta.url);
// the wasm is read from disk: the module would otherwise fetch() it, which node cannot do
const wasm = await WebAssembly.compile(
  readFileSync(require.resolve('@jsquash/jpeg/codec/enc/mozjpeg_enc.wasm')));
await init(wasm);

const HEADER = 32;
let pending = Buffer.alloc(0);
let busy = false;

function toRgba(pixels, width, height, channels) {
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const j = 4 * i;
    if (channels === 1) {
      rgba[j] = rgba[j + 1] = rgba[j + 2] = pixels[i];
    } else {
      rgba[j] = pixels[3 * i]; rgba[j + 1] = pixels[3 * i + 1]; rgba[j + 2] = pixels[3 * i + 2];
    }
    rgba[j + 3] = 255;
  }
  return rgba;
}

async function answer(header, pixels) {
  const [width, height, channels, quality, quantTable, subsample, trellis] = header;
  const options = { quality, quant_table: quantTable, color_space: channels === 1 ? 1 : 3 };
  if (subsample >= 0) { options.auto_subsample = false; options.chroma_subsample = subsample; }
  if (!trellis) options.trellis_loops = 0;
  const length = Buffer.alloc(4);
  try {
    const data = toRgba(pixels, width, height, channels);
    const jpeg = Buffer.from(await encode({ data, width, height }, options));
    length.writeUInt32LE(jpeg.length, 0);
    process.stdout.write(Buffer.concat([length, jpeg]));
  } catch (err) {
    process.stderr.write(`mozjpeg: ${err}\n`);
    process.stdout.write(length);
  }
}

async function pump() {
  if (busy) return;
  busy = true;
  while (pending.length >= HEADER) {
    const header = [];
    for (let k = 0; k < 8; k++) header.push(pending.readInt32LE(4 * k));
    const size = header[0] * header[1] * header[2];
    if (pending.length < HEADER + size) break;
    const pixels = pending.subarray(HEADER, HEADER + size);
    pending = pending.subarray(HEADER + size);
    await answer(header, pixels);
  }
  busy = false;
}

process.stdin.on('data', (chunk) => { pending = Buffer.concat([pending, chunk]); pump(); });
process.stdin.on('end', () => process.exit(0));
