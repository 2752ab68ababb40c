"""OCR engines behind the reader emulator, the MLLM-style downscale, and an LRU cache."""
from __future__ import annotations

import hashlib
import io
import threading
import time
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

from PIL import Image

from answer_rule import Line

# Decompression bombs are refused (a 64 MB body can hold a much larger image).
MAX_PIXELS = 80_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class BadImage(ValueError):
    pass


def decode_image(data: bytes) -> Image.Image:
    """Bytes -> RGB PIL image (alpha composited on white). Raises BadImage."""
    try:
        im = Image.open(io.BytesIO(data))
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise BadImage(f"image too large: {w}x{h} pixels (limit {MAX_PIXELS})")
        im.load()
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImage(f"image too large: {e}") from e
    except Exception as e:  # PIL raises many kinds
        raise BadImage(f"not a decodable image: {type(e).__name__}: {e}") from e
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im, mask=im.getchannel("A"))
        return bg
    return im.convert("RGB")


def downscale(im: Image.Image, max_side: int) -> Image.Image:
    """Resize so the longest side is at most `max_side` (bicubic, aspect kept); never upscale."""
    w, h = im.size
    m = max(w, h)
    if m <= max_side:
        return im
    s = max_side / m
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    return im.resize((nw, nh), Image.BICUBIC)


class RapidOcrEngine:
    name = "rapidocr"

    def __init__(self, use_cls: bool = False, threads: int = -1):
        from rapidocr_onnxruntime import RapidOCR

        kw = {}
        if threads and threads > 0:
            kw = {
                "det_intra_op_num_threads": threads,
                "cls_intra_op_num_threads": threads,
                "rec_intra_op_num_threads": threads,
            }
        self._ocr = RapidOCR(**kw)
        self._use_cls = use_cls

    def read(self, im: Image.Image) -> List[Line]:
        res, _ = self._ocr(im, use_cls=self._use_cls)
        out = []
        for box, text, score in res or []:
            xs = [float(p[0]) for p in box]
            ys = [float(p[1]) for p in box]
            out.append(Line(str(text), (min(xs), min(ys), max(xs), max(ys)), float(score)))
        return out


class TesseractEngine:
    """Debian's tesseract-ocr via pytesseract. Tesseract wants glyphs ~20-30 px tall, so the
    (already downscaled) image is enlarged `upscale` times before reading; that adds no detail."""

    name = "tesseract"

    def __init__(self, upscale: float = 2.0, psm: int = 11, min_conf: float = 30.0):
        import pytesseract

        self._pt = pytesseract
        pytesseract.get_tesseract_version()  # raises if the binary is missing
        self._up = upscale
        self._psm = psm
        self._min_conf = min_conf

    def read(self, im: Image.Image) -> List[Line]:
        up = self._up
        src = im
        if up and up != 1.0:
            src = im.resize((max(1, round(im.width * up)), max(1, round(im.height * up))), Image.BICUBIC)
        else:
            up = 1.0
        d = self._pt.image_to_data(
            src, config=f"--psm {self._psm} --oem 1", output_type=self._pt.Output.DICT
        )
        groups: Dict[Tuple[int, int, int], list] = OrderedDict()
        for i, word in enumerate(d["text"]):
            word = (word or "").strip()
            try:
                conf = float(d["conf"][i])
            except (TypeError, ValueError):
                conf = -1.0
            if not word or conf < self._min_conf:
                continue
            key = (d["block_num"][i], d["par_num"][i], d["line_num"][i])
            groups.setdefault(key, []).append(
                (d["left"][i], d["top"][i], d["width"][i], d["height"][i], word, conf)
            )
        out = []
        for words in groups.values():
            words.sort(key=lambda w: w[0])
            x1 = min(w[0] for w in words) / up
            y1 = min(w[1] for w in words) / up
            x2 = max(w[0] + w[2] for w in words) / up
            y2 = max(w[1] + w[3] for w in words) / up
            text = " ".join(w[4] for w in words)
            score = sum(w[5] for w in words) / len(words) / 100.0
            out.append(Line(text, (x1, y1, x2, y2), score))
        return out


def make_engine(name: str, **kw):
    if name == "rapidocr":
        return RapidOcrEngine(use_cls=kw.get("use_cls", False), threads=kw.get("threads", -1))
    if name == "tesseract":
        return TesseractEngine(upscale=kw.get("tess_upscale", 2.0), psm=kw.get("tess_psm", 11))
    raise ValueError(f"unknown engine {name!r} (rapidocr|tesseract)")


class Reader:
    """Downscale + OCR with an LRU cache keyed by (image hash, R, engine). Thread-safe; the engine
    runs one image at a time (it already uses the cores), and a cache miss re-checks the cache once
    it holds the engine, so concurrent requests for one image run OCR once."""

    def __init__(self, engine, max_side: int = 1024, cache_size: int = 512):
        self.engine = engine
        self.max_side = max_side
        self.cache_size = cache_size
        self._cache: "OrderedDict[tuple, List[Line]]" = OrderedDict()
        self._cache_lock = threading.Lock()
        self._engine_lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _get(self, key):
        with self._cache_lock:
            v = self._cache.get(key)
            if v is not None:
                self._cache.move_to_end(key)
            return v

    def _put(self, key, v):
        with self._cache_lock:
            self._cache[key] = v
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def read_bytes(self, data: bytes, max_side: Optional[int] = None) -> Tuple[List[Line], float, bool]:
        """OCR lines of the image in `data` after the downscale; (lines, engine seconds, cache hit).
        Raises BadImage."""
        r = max_side or self.max_side
        key = (hashlib.sha256(data).hexdigest(), r, self.engine.name)
        v = self._get(key)
        if v is not None:
            self.hits += 1
            return v, 0.0, True
        im = downscale(decode_image(data), r)
        with self._engine_lock:
            v = self._get(key)
            if v is not None:
                self.hits += 1
                return v, 0.0, True
            t0 = time.perf_counter()
            lines = self.engine.read(im)
            dt = time.perf_counter() - t0
        self.misses += 1
        self._put(key, lines)
        return lines, dt, False
