"""How well `fbcnn.jpeg.trace.detect` tells decoded JPEGs from images that never were JPEGs,
on a labelled set built here (seeded, so every run builds the same set):

- never JPEG: rendered text (several fonts, sizes, colours, anti-aliased), user-interface
  mock-ups (panels, buttons, gradients, text), charts (lines, bars, scatter), web-page-like
  screenshots (a downscaled photo among UI and text), smooth gradients, and clean photos
  downscaled 2x, 3x and 4x (the Kodak and DIV2K PNGs, and the training Wikipedia PNGs);
- decoded JPEGs: validation photos written by libjpeg (4:2:0 and 4:4:4), MozJPEG and jpegli at
  quality 10..95, cropped at a random offset (so the grid is anywhere), colour and grey.

Prints one row per kind (count, share judged as JPEG, mean seconds) and the two targets of
the issue: never-JPEG inputs left alone (>= 99%) and decoded JPEGs at quality <= 80
recognised (>= 98%).

    python scripts/probes/jpeg_trace_rates.py [--data ../shared/datasets] [--photos 24]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fbcnn.jpeg.encoders import EncoderSpec, available, compress_with
from fbcnn.jpeg.trace import detect

ROOT = Path(__file__).resolve().parents[2]
WORDS = ("JPEG artifacts removal quality factor network restore image photo screenshot "
         "settings cancel open save file edit view help window button menu 0123456789 "
         "The quick brown fox jumps over the lazy dog").split()


def font(rng: np.random.Generator) -> ImageFont.ImageFont:
    size = int(rng.integers(9, 40))
    fonts = sorted(Path("/usr/share/fonts").rglob("*.ttf")) if Path("/usr/share/fonts").is_dir() \
        else []
    if fonts and rng.random() < 0.7:
        return ImageFont.truetype(str(fonts[int(rng.integers(len(fonts)))]), size)
    return ImageFont.load_default(size=size)


def colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def sentence(rng: np.random.Generator, n: int = 8) -> str:
    return " ".join(WORDS[int(i)] for i in rng.integers(0, len(WORDS), n))


def text_image(rng: np.random.Generator) -> np.ndarray:
    w, h = int(rng.integers(200, 900)), int(rng.integers(120, 700))
    bg = (255, 255, 255) if rng.random() < 0.5 else colour(rng)
    im = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(im)
    y = int(rng.integers(0, 20))
    while y < h:
        f = font(rng)
        draw.text((int(rng.integers(0, 30)), y), sentence(rng, 12), font=f, fill=colour(rng))
        y += int(f.size * rng.uniform(1.1, 2.0)) if hasattr(f, "size") else 16
    return np.asarray(im)


def ui_image(rng: np.random.Generator) -> np.ndarray:
    w, h = int(rng.integers(300, 1000)), int(rng.integers(200, 800))
    im = Image.new("RGB", (w, h), colour(rng) if rng.random() < 0.3 else (245, 245, 245))
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(5, 30))):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        x1, y1 = x0 + int(rng.integers(20, 300)), y0 + int(rng.integers(12, 60))
        if rng.random() < 0.5:
            draw.rounded_rectangle((x0, y0, x1, y1), radius=int(rng.integers(0, 12)),
                                   fill=colour(rng), outline=colour(rng))
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour(rng))
        draw.text((x0 + 4, y0 + 2), sentence(rng, 2), font=font(rng), fill=colour(rng))
    if rng.random() < 0.5:  # a gradient header
        ramp = np.linspace(0, 1, w)[None, :, None]
        a, b = np.asarray(colour(rng)), np.asarray(colour(rng))
        band = (a * (1 - ramp) + b * ramp).repeat(40, axis=0).round().astype(np.uint8)
        arr = np.asarray(im).copy()
        arr[:40] = band
        return arr
    return np.asarray(im)


def chart_image(rng: np.random.Generator) -> np.ndarray:
    w, h = int(rng.integers(300, 900)), int(rng.integers(200, 700))
    im = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(im)
    for x in range(40, w, int(rng.integers(20, 80))):
        draw.line((x, 20, x, h - 30), fill=(220, 220, 220))
    kind = rng.integers(3)
    n = int(rng.integers(5, 40))
    values = rng.uniform(30, h - 40, n)
    xs = np.linspace(50, w - 20, n)
    if kind == 0:
        draw.line(list(zip(xs, values, strict=True)), fill=colour(rng),
                  width=int(rng.integers(1, 4)))
    elif kind == 1:
        bw = max(2, int((w - 70) / n * 0.7))
        for x, v in zip(xs, values, strict=True):
            draw.rectangle((x, v, x + bw, h - 30), fill=colour(rng))
    else:
        for x, v in zip(rng.uniform(50, w - 20, 200), rng.uniform(30, h - 40, 200),
                        strict=True):
            r = int(rng.integers(2, 6))
            draw.ellipse((x - r, v - r, x + r, v + r), fill=colour(rng))
    draw.text((50, h - 25), sentence(rng, 4), font=font(rng), fill="black")
    return np.asarray(im)


def gradient_image(rng: np.random.Generator) -> np.ndarray:
    w, h = int(rng.integers(200, 800)), int(rng.integers(200, 800))
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    a, b = np.asarray(colour(rng), float), np.asarray(colour(rng), float)
    t = (xx * rng.uniform(0, 1) + yy * rng.uniform(0, 1))[..., None]
    t = t / max(t.max(), 1e-9)
    return (a * (1 - t) + b * t).round().astype(np.uint8)


def downscaled(photo: np.ndarray, factor: int) -> np.ndarray:
    h, w = photo.shape[:2]
    pil = Image.fromarray(photo)
    return np.asarray(pil.resize((max(16, w // factor), max(16, h // factor)), Image.LANCZOS))


def screenshot_image(rng: np.random.Generator, photo: np.ndarray) -> np.ndarray:
    page = ui_image(rng).copy()
    small = downscaled(photo, int(rng.integers(2, 5)))
    h, w = page.shape[:2]
    ph, pw = min(small.shape[0], h - 10), min(small.shape[1], w - 10)
    y, x = int(rng.integers(0, h - ph)), int(rng.integers(0, w - pw))
    page[y:y + ph, x:x + pw] = small[:ph, :pw]
    return page


def photos(folder: Path, limit: int) -> list[np.ndarray]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg"))
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths[:limit]]


def labelled_set(data: Path, count: int, seed: int):
    """(kind, is_jpeg, pixels) triples."""
    rng = np.random.default_rng(seed)
    kodak = photos(data / "val/color/kodak24", count)
    div2k = photos(data / "train/color/div2k_crops", count)
    wiki = photos(data / "train/color/wikipedia", count)
    bsds = photos(data / "val/color/bsds500_test", count)
    for _ in range(count):
        yield "text", False, text_image(rng)
        yield "user interface", False, ui_image(rng)
        yield "chart", False, chart_image(rng)
        yield "gradient", False, gradient_image(rng)
    for i in range(count):
        yield "screenshot with photo", False, screenshot_image(rng, wiki[i % len(wiki)])
    for source, pics in (("Kodak", kodak), ("DIV2K crop", div2k), ("Wikipedia", wiki)):
        for pic in pics:
            factor = int(rng.integers(2, 5))
            if min(pic.shape[:2]) // factor >= 64:
                yield f"photo downscaled 2-4x ({source})", False, downscaled(pic, factor)
    encoders = [EncoderSpec("libjpeg"), EncoderSpec("libjpeg", "4:4:4")]
    encoders += [EncoderSpec(name) for name in ("mozjpeg", "jpegli") if available(name)]
    for spec in encoders:
        for pic in kodak + bsds:
            quality = int(rng.integers(10, 96))
            source = pic if rng.random() < 0.8 else pic[:, :, :1].copy()
            decoded = compress_with(spec, source, quality)[0]
            dy, dx = (int(v) for v in rng.integers(0, 8, 2))
            band = "<= 80" if quality <= 80 else "81-95"
            yield f"JPEG {spec.label}, quality {band}", True, decoded[dy:, dx:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--count", type=int, default=40,
                        help="images per synthetic kind and photos per folder (default 40)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows: dict[str, list[tuple[bool, bool, float]]] = defaultdict(list)
    for kind, is_jpeg, pixels in labelled_set(args.data, args.count, args.seed):
        start = time.perf_counter()
        verdict = detect(pixels)
        rows[kind].append((is_jpeg, verdict.found, time.perf_counter() - start))
    print("| kind | images | judged JPEG | seconds (mean) |")
    print("| --- | ---: | ---: | ---: |")
    for kind, items in rows.items():
        found = sum(f for _, f, _ in items)
        print(f"| {kind} | {len(items)} | {found} ({100 * found / len(items):.1f}%) | "
              f"{np.mean([t for *_, t in items]):.3f} |")
    lossless = [f for items in rows.values() for j, f, _ in items if not j]
    recognised = [f for kind, items in rows.items() if "<= 80" in kind for _, f, _ in items]
    print(f"\nnever-JPEG images left alone: {len(lossless) - sum(lossless)} of {len(lossless)} "
          f"({100 * (1 - np.mean(lossless)):.1f}%)")
    print(f"decoded JPEGs at quality <= 80 recognised: {sum(recognised)} of {len(recognised)} "
          f"({100 * np.mean(recognised):.1f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
