// Runs the page's jpegtrace.js under Node for tests/test_web_jpegtrace.py: reads a JSON list of
// cases ({file, height, width, channels}: raw uint8 pixels, h x w x channels) on stdin and
// writes one JSON verdict per case ({found, offset, score, median, judged, scores, blocks},
// plus seconds). The module is loaded from its source as a data: URL, so Node needs no
// package.json saying it is an ES module.

import { readFileSync } from "node:fs";

const source = readFileSync(new URL("../src/fbcnn/frontends/web/static/jpegtrace.js", import.meta.url), "utf8");
const trace = await import(`data:text/javascript;base64,${Buffer.from(source).toString("base64")}`);

const cases = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map(({ file, height, width, channels }) => {
  const pixels = new Uint8Array(readFileSync(file));
  if (pixels.length !== height * width * channels) throw new Error(`${file}: wrong size`);
  const started = performance.now();
  const verdict = trace.detect(pixels, height, width, channels);
  const seconds = (performance.now() - started) / 1000;
  return {
    ...verdict, scores: verdict.scores ? Array.from(verdict.scores) : null, seconds,
    tiles: trace.tilePositions(height, width),
  };
});
process.stdout.write(JSON.stringify(out));
