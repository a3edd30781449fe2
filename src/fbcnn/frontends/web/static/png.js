// A PNG encoder for the download: 8-bit grey, grey + alpha, RGB or RGBA, exactly the
// pixels given (a canvas would premultiply alpha and always write RGBA). Deflate is the
// browser's CompressionStream("deflate"), which writes the zlib stream PNG wants.

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

const COLOUR_TYPES = { 1: 0, 2: 4, 3: 2, 4: 6 };

/** A PNG Blob of interleaved 8-bit pixels (h x w x channels, channels 1..4). */
export async function encodePng(pixels, width, height, channels) {
  const row = width * channels;
  const raw = new Uint8Array((row + 1) * height);
  for (let y = 0; y < height; y++) {
    const o = y * (row + 1);
    const src = y * row;
    raw[o] = 1; // filter "Sub": each byte minus the same channel of the pixel to its left
    for (let i = 0; i < row; i++) {
      raw[o + 1 + i] = (pixels[src + i] - (i >= channels ? pixels[src + i - channels] : 0)) & 0xff;
    }
  }
  const compressed = await new Response(
    new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate"))).arrayBuffer();
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header[8] = 8;
  header[9] = COLOUR_TYPES[channels];
  const signature = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
  return new Blob([signature, chunk("IHDR", header), chunk("IDAT", new Uint8Array(compressed)),
    chunk("IEND", new Uint8Array(0))], { type: "image/png" });
}
