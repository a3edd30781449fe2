// What the page reads from a file's bytes before the browser decodes it: the format, the
// size, and for JPEGs the quantisation tables (DQT), their IJG quality (as
// src/fbcnn/jpeg/tables.py `qf_from_tables`), the components and chroma subsampling (as Pillow
// reports them), the EXIF orientation, and whether the data is complete.

export class ImageFileError extends Error {}

// zigzag position -> natural (row-major) index (the JPEG standard's order)
export const NATURAL_ORDER = [
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27,
  20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58,
  59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

// ITU T.81 Annex K tables, natural order: what libjpeg scales by quality
const STD_LUMA = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69,
  56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81,
  104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];
const STD_CHROMA = [
  17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99,
  99, 47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
  99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

/** libjpeg's jpeg_set_quality(q, force_baseline=TRUE) tables: [luma, chroma], natural order. */
export function standardTables(q) {
  const scale = q < 50 ? Math.trunc(5000 / q) : 200 - 2 * q;
  const scaled = (base) => base.map((v) => Math.min(255, Math.max(1, Math.trunc((v * scale + 50) / 100))));
  return [scaled(STD_LUMA), scaled(STD_CHROMA)];
}

let standardLogs = null;

/** The IJG quality whose standard tables are nearest (sum of |log| differences) to these:
 * `tables` maps table id -> 64 values in natural order; ids 0 and 1 are used, as
 * jpeg/tables.py qf_from_tables (exact for libjpeg, Pillow, OpenCV; the nearest fit for others). */
export function qfFromTables(tables) {
  if (!standardLogs) {
    standardLogs = [];
    for (let q = 1; q <= 100; q++) standardLogs.push(standardTables(q).map((t) => t.map(Math.log)));
  }
  const luma = tables[0].map((v) => Math.log(Math.max(v, 1)));
  const chroma = tables[1] ? tables[1].map((v) => Math.log(Math.max(v, 1))) : null;
  let best = 0;
  let bestErr = Infinity;
  for (let q = 0; q < 100; q++) {
    let err = 0;
    for (let i = 0; i < 64; i++) err += Math.abs(standardLogs[q][0][i] - luma[i]);
    if (chroma) for (let i = 0; i < 64; i++) err += Math.abs(standardLogs[q][1][i] - chroma[i]);
    if (err < bestErr) {
      bestErr = err;
      best = q;
    }
  }
  return best + 1;
}

/** Pillow's name for a colour JPEG's sampling ('4:4:4', '4:2:2', '4:2:0'), else null. */
function samplingName(components) {
  if (components.length !== 3) return null;
  const key = components.map((c) => `${c.h}${c.v}`).join(",");
  return { "11,11,11": "4:4:4", "21,11,11": "4:2:2", "22,11,11": "4:2:0" }[key] ?? null;
}

/** The EXIF orientation (1..8) in an APP1 Exif segment's payload, or 1. */
function exifOrientation(bytes, start, end) {
  const tiff = start + 6; // after "Exif\0\0"
  if (end - tiff < 8) return 1;
  const little = bytes[tiff] === 0x49 && bytes[tiff + 1] === 0x49;
  const u16 = (i) => (little ? bytes[i] | (bytes[i + 1] << 8) : (bytes[i] << 8) | bytes[i + 1]);
  const u32 = (i) => (little
    ? (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16)) + bytes[i + 3] * 2 ** 24
    : bytes[i] * 2 ** 24 + ((bytes[i + 1] << 16) | (bytes[i + 2] << 8) | bytes[i + 3]));
  const ifd = tiff + u32(tiff + 4);
  if (ifd + 2 > end) return 1;
  const count = u16(ifd);
  for (let k = 0; k < count; k++) {
    const entry = ifd + 2 + 12 * k;
    if (entry + 12 > end) break;
    if (u16(entry) === 0x0112) {
      const value = u16(entry + 8);
      return value >= 1 && value <= 8 ? value : 1;
    }
  }
  return 1;
}

function parseJpeg(bytes) {
  const info = {
    format: "JPEG", width: null, height: null, components: [], tables: {}, orientation: 1,
    progressive: false, complete: false, problem: null,
  };
  const n = bytes.length;
  let i = 2;
  let seenFrame = false;
  let seenScan = false;
  while (i < n) {
    if (bytes[i] !== 0xff) {
      info.problem = "corrupt or truncated image (bad JPEG marker)";
      return info;
    }
    while (i < n && bytes[i] === 0xff) i++; // fill bytes
    if (i >= n) break;
    const marker = bytes[i++];
    if (marker === 0xd9) { // EOI
      info.complete = seenFrame && seenScan;
      if (!info.complete) info.problem = "corrupt or truncated image (no image data)";
      return info;
    }
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) continue; // no length
    if (i + 2 > n) break;
    const length = (bytes[i] << 8) | bytes[i + 1];
    const start = i + 2;
    const end = i + length;
    if (length < 2 || end > n) break;
    if (marker === 0xdb) { // DQT
      let p = start;
      while (p < end) {
        const precision = bytes[p] >> 4;
        const id = bytes[p] & 15;
        p++;
        const size = precision ? 2 : 1;
        if (p + 64 * size > end) break;
        const table = new Array(64);
        for (let k = 0; k < 64; k++) {
          table[NATURAL_ORDER[k]] = size === 2 ? (bytes[p + 2 * k] << 8) | bytes[p + 2 * k + 1] : bytes[p + k];
        }
        info.tables[id] = table;
        p += 64 * size;
      }
    } else if ((marker >= 0xc0 && marker <= 0xcf) && marker !== 0xc4 && marker !== 0xc8
               && marker !== 0xcc) { // SOFn
      if (!seenFrame) {
        info.height = (bytes[start + 1] << 8) | bytes[start + 2];
        info.width = (bytes[start + 3] << 8) | bytes[start + 4];
        const count = bytes[start + 5];
        for (let k = 0; k < count && start + 8 + 3 * k < end; k++) {
          const c = start + 6 + 3 * k;
          info.components.push({ id: bytes[c], h: bytes[c + 1] >> 4, v: bytes[c + 1] & 15, tq: bytes[c + 2] });
        }
        info.progressive = marker === 0xc2 || marker === 0xc6 || marker === 0xca || marker === 0xce;
      }
      seenFrame = true;
    } else if (marker === 0xe1 && info.orientation === 1 && length >= 8
               && String.fromCharCode(...bytes.subarray(start, start + 4)) === "Exif") {
      info.orientation = exifOrientation(bytes, start, end);
    }
    i = end;
    if (marker === 0xda) { // SOS: skip the entropy-coded data up to the next marker
      seenScan = true;
      while (i < n) {
        if (bytes[i] === 0xff && i + 1 < n) {
          const next = bytes[i + 1];
          if (next === 0x00 || (next >= 0xd0 && next <= 0xd7)) {
            i += 2;
            continue;
          }
          if (next === 0xff) {
            i++;
            continue;
          }
          break;
        }
        i++;
      }
    }
  }
  info.problem = "corrupt or truncated image (the JPEG data ends early)";
  return info;
}

function parsePng(bytes) {
  const info = { format: "PNG", width: null, height: null, grey: false, alpha: false, problem: null };
  if (bytes.length < 33 || String.fromCharCode(...bytes.subarray(12, 16)) !== "IHDR") {
    info.problem = "corrupt or truncated image (unreadable header)";
    return info;
  }
  const u32 = (i) => bytes[i] * 2 ** 24 + ((bytes[i + 1] << 16) | (bytes[i + 2] << 8) | bytes[i + 3]);
  info.width = u32(16);
  info.height = u32(20);
  const colourType = bytes[25];
  info.grey = colourType === 0 || colourType === 4;
  info.alpha = colourType === 4 || colourType === 6;
  info.palette = colourType === 3;
  return info;
}

const startsWith = (bytes, prefix) => prefix.every((b, k) => bytes[k] === b);

/** What the bytes are, before decoding: {format, width, height, ...}. Throws
 * ImageFileError for an empty file; `problem` is set for a damaged JPEG or PNG. */
export function inspectBytes(bytes) {
  if (bytes.length === 0) throw new ImageFileError("empty file");
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) {
    const info = parseJpeg(bytes);
    info.grey = info.components.length === 1;
    info.subsampling = samplingName(info.components);
    info.headerQf = 0 in info.tables ? qfFromTables(info.tables) : null;
    return info;
  }
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return parsePng(bytes);
  const gif = startsWith(bytes, [0x47, 0x49, 0x46, 0x38]);
  const known = gif || startsWith(bytes, [0x42, 0x4d])
    || startsWith(bytes, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a])
    || (startsWith(bytes, [0x52, 0x49, 0x46, 0x46]) && String.fromCharCode(...bytes.subarray(8, 12)) === "WEBP");
  return { format: known ? "image" : null, width: null, height: null, grey: false, palette: gif,
    problem: null };
}

/** jpeg/tables.py grid_multiple: tile starts must be multiples of this to keep the JPEG blocks. */
export function gridMultiple(subsampling, channels) {
  if (channels === 3 && (subsampling === null || subsampling === "4:2:0" || subsampling === "4:2:2")) return 16;
  return 8;
}

/** The quantisation tables the Python reader keeps (images/files.py `_usable_tables`, with
 * the tables that `read_image` drops for CMYK / YCCK files): {id: 64 values, natural order},
 * or null: not a JPEG, no 64-value luma table, a table with a step of 0, or a colour JPEG
 * sampled other than 4:2:0 / 4:2:2 / 4:4:4 (CMYK included). Unlike `consistencyTables`,
 * an EXIF-turned file keeps them (they still say how it was compressed). */
export function usableTables(info) {
  if (info.format !== "JPEG") return null;
  const luma = info.tables[0];
  if (!luma || luma.length !== 64) return null;
  if (Object.values(info.tables).some((t) => t.length !== 64 || Math.min(...t) < 1)) return null;
  if (info.components.length !== 1 && info.subsampling === null) return null;
  return info.tables;
}

// ------------------------------------------------------------ jpeg/qf.py single_jpeg_qf

export const TABLES_FLOOR_MAX = 90; // jpeg/qf.py TABLES_FLOOR_MAX
export const TABLES_FLOOR_MIN_SHARE = 0.6; // jpeg/qf.py TABLES_FLOOR_MIN_SHARE
export const JPEGLI_FLOOR_MAX = 80; // jpeg/qf.py JPEGLI_FLOOR_MAX

const tablesKey = (tables) => tables.map((t) => Array.from(t).join(",")).join("/");

/** The jpegli quality of every table list jpegli writes (jpeg/qf.py `_jpegli_qualities`): a
 * Map from (luma,) and (luma, chroma) of every quality to that quality (the lowest where
 * several write the same), from jpegli_tables.json (its parsed JSON). */
export function jpegliQualities(json) {
  const qualities = new Map();
  const byQuality = Object.keys(json.tables).map(Number).sort((a, b) => b - a);
  for (const quality of byQuality) {
    const pair = json.tables[String(quality)];
    for (const n of [1, 2]) qualities.set(tablesKey(pair.slice(0, n)), quality);
  }
  return qualities;
}

/** jpeg/qf.py jpegli_quality: the jpegli quality that writes these tables (natural order;
 * the luma table alone when there is no chroma table, else both, exactly), or null. */
export function jpegliQuality(jpegli, luma, chroma = null) {
  const key = tablesKey(chroma === null || chroma === undefined ? [luma] : [luma, chroma]);
  return jpegli.get(key) ?? null;
}

/** jpeg/qf.py tables_floor: the QF a single JPEG read below it is raised to, the jpegli
 * quality for tables jpegli writes (up to JPEGLI_FLOOR_MAX), the tables' IJG-equivalent QF
 * `tablesQf` for others (up to TABLES_FLOOR_MAX); else null. */
export function tablesFloorQf(tablesQf, luma, chroma, jpegli) {
  if (tablesQf === null || tablesQf === undefined || !luma) return null;
  const quality = jpegliQuality(jpegli, luma, chroma);
  if (quality !== null) return quality <= JPEGLI_FLOOR_MAX ? quality : null;
  return tablesQf <= TABLES_FLOOR_MAX ? tablesQf : null;
}

/** What the QF rule of a single JPEG reads from a file (engine/analysis.py `_tables_floor`):
 * {qf: the header QF, luma, chroma (null without a table 1)}, or null where the rule cannot
 * apply (not a JPEG, no usable tables (`usableTables`), tables' QF above TABLES_FLOOR_MAX:
 * no floor, jpegli's included, whose floors write tables of QF 89 at most): then no jpegli
 * tables are needed. */
export function floorTables(info) {
  const tables = usableTables(info);
  if (!tables || info.headerQf === null || info.headerQf === undefined
      || info.headerQf > TABLES_FLOOR_MAX) return null;
  return { qf: info.headerQf, luma: tables[0], chroma: tables[1] ?? null };
}

/** jpeg/qf.py single_jpeg_qf: the QF a single JPEG is fed, its `tablesFloorQf` when the
 * network's reading `predictedQf` is below it but not below TABLES_FLOOR_MIN_SHARE of it
 * (`jpegli`: `jpegliQualities`'s map); else null (the reading itself). */
export function singleJpegQf(predictedQf, tablesQf, luma, chroma, jpegli) {
  const floor = tablesFloorQf(tablesQf, luma, chroma, jpegli);
  if (floor === null || !(TABLES_FLOOR_MIN_SHARE * floor <= predictedQf && predictedQf < floor)) {
    return null;
  }
  return floor;
}

/** The tables that bound the result (jpeg/consistency.py `JpegTables.from_pillow`, after
 * images/files.py `_usable_tables` and engine/analysis.py `jpeg_tables`), or null: not a
 * JPEG, turned by EXIF, tables missing or with a step of 0 (any table, as Python checks
 * them all), or a colour JPEG sampled other than 4:2:0 / 4:2:2 / 4:4:4 (4:1:1, 4:4:0, ...:
 * Pillow's subsampling None). CMYK / YCCK files are the caller's to refuse. */
export function consistencyTables(info) {
  const tables = usableTables(info);
  if (!tables || info.orientation !== 1) return null;
  const luma = tables[0];
  if (info.components.length === 1) return { luma, chroma: null, subsampling: null };
  const chroma = tables[1] ?? luma;
  return { luma, chroma, subsampling: info.subsampling };
}
