#!/usr/bin/env python3
"""The edit pipeline of crates/etchr-ops/benches/pipeline.rs, op for op, in Pillow.

decode a 12-megapixel JPEG -> crop + zoom x2 (bicubic) + box outline + dim outside a region ->
PNG and JPEG encode. Writes bench/out/pipeline-pillow.json. PNG is timed at compress_level=1
(the closest to our fast deflate) and at Pillow's default (6), and both are reported.
"""
import io
import json
import pathlib
import statistics
import time

import PIL
from PIL import Image, ImageDraw

OUT = pathlib.Path(__file__).resolve().parent / "out"
ITERATIONS = 15
CROP = (1400, 1000, 2400, 1750)
BOX = (1700, 1200, 2000, 1400)  # original pixels
DIM = 0.6


def to_view(x, y):
    return ((x - CROP[0]) * 2, (y - CROP[1]) * 2)


def run(data):
    t0 = time.perf_counter()
    img = Image.open(io.BytesIO(data))
    img.load()
    img = img.convert("RGB")
    t1 = time.perf_counter()
    img = img.crop(CROP)
    img = img.resize((img.width * 2, img.height * 2), Image.BICUBIC)
    x0, y0 = to_view(BOX[0], BOX[1])
    x1, y1 = to_view(BOX[2], BOX[3])
    inside = img.crop((x0, y0, x1, y1))
    keep = int(round((1 - DIM) * 256))
    img = img.point(lambda v: (v * keep) >> 8)
    img.paste(inside, (x0, y0))
    draw = ImageDraw.Draw(img)
    w = 4
    draw.rectangle((x0 - w, y0 - w, x1 + w - 1, y1 + w - 1), outline=(230, 25, 25), width=w)
    t2 = time.perf_counter()
    png_fast = io.BytesIO()
    img.save(png_fast, "PNG", compress_level=1)
    t3 = time.perf_counter()
    jpeg = io.BytesIO()
    img.save(jpeg, "JPEG", quality=90)
    t4 = time.perf_counter()
    png_default = io.BytesIO()
    img.save(png_default, "PNG")
    t5 = time.perf_counter()
    ms = lambda a, b: (b - a) * 1e3
    return {
        "decode": ms(t0, t1),
        "ops": ms(t1, t2),
        "encode_png": ms(t2, t3),
        "encode_jpeg": ms(t3, t4),
        "encode_png_default": ms(t4, t5),
        "total": ms(t0, t4),
    }


def main():
    data = (OUT / "photo-12mp.jpg").read_bytes()
    runs = [run(data) for _ in range(ITERATIONS)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    report = {
        "implementation": f"Pillow {PIL.__version__}",
        "iterations": ITERATIONS,
        "median_ms": med,
        "total_with_default_png_ms": med["total"] - med["encode_png"] + med["encode_png_default"],
    }
    print(json.dumps(report, indent=2))
    (OUT / "pipeline-pillow.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
