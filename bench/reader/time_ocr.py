#!/usr/bin/env python3
"""Time one OCR pass per image at a given R for each engine, on generated images.

    bench/.venv/bin/python bench/reader/time_ocr.py [--max-side 1024] [--runs 3] [--engines rapidocr,tesseract]
"""
import argparse
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from answer_rule import CODE_ALPHABET, key_token  # noqa: E402
from engines import downscale, make_engine  # noqa: E402

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def simple():
    im = Image.new("RGB", (1000, 700), "white")
    ImageDraw.Draw(im).text((100, 300), "Pump 7: K3MX9", font=ImageFont.truetype(FONT, 64), fill="black")
    return im


def panel(seed=0, w=3000, h=2000, n=40):
    """A cluttered panel: coloured shapes, each with a `KEY: CODE` tag, mixed font sizes."""
    rng = random.Random(seed)
    truth = []
    im = Image.new("RGB", (w, h), (245, 245, 240))
    d = ImageDraw.Draw(im)
    for i in range(n):
        x, y = rng.randrange(0, w - 300), rng.randrange(0, h - 200)
        col = tuple(rng.randrange(40, 230) for _ in range(3))
        if rng.random() < 0.5:
            d.ellipse((x, y, x + 120, y + 120), fill=col)
        else:
            d.rectangle((x, y, x + 120, y + 120), fill=col)
        code = "".join(rng.choice(CODE_ALPHABET) for _ in range(rng.choice((5, 6))))
        size = rng.choice((14, 18, 24, 36, 48))
        d.text((x, y + 125), f"Unit {i}: {code}", font=ImageFont.truetype(FONT, size), fill="black")
        truth.append((f"Unit {i}", code, size))
    return im, truth


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--max-side", type=int, default=1024)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--engines", default="rapidocr,tesseract")
    a = p.parse_args()
    pim, truth = panel()
    images = {"text 1000x700": simple(), "panel 3000x2000 (40 tags)": pim}
    print(f"R={a.max_side}, median of {a.runs} uncached runs, {os.cpu_count()} CPUs")
    for name in a.engines.split(","):
        eng = make_engine(name)
        for label, im in images.items():
            small = downscale(im, a.max_side)
            eng.read(small)  # warm-up
            ts = []
            for _ in range(a.runs):
                t0 = time.perf_counter()
                lines = eng.read(small)
                ts.append(time.perf_counter() - t0)
            print(f"{name:10s} {label:28s} -> {small.size[0]}x{small.size[1]}: "
                  f"{statistics.median(ts) * 1000:7.0f} ms, {len(lines)} lines")
        # which panel tags the key rule reads correctly, by font size (px on the 3000x2000 canvas)
        lines = eng.read(downscale(pim, a.max_side))
        by = {}
        for key, code, size in truth:
            ok = key_token(lines, key) == code
            got = by.setdefault(size, [0, 0])
            got[0] += ok
            got[1] += 1
        print(f"{name:10s} tags read by font px: " + ", ".join(f"{s}px {c}/{n}" for s, (c, n) in sorted(by.items())))


if __name__ == "__main__":
    main()
