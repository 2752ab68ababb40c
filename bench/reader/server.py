#!/usr/bin/env python3
"""Reader emulator: an OpenAI-compatible chat-completions server whose "perception" is a real OCR
engine reading each image after an MLLM-style downscale. See README.md beside this file.

It emulates the perception bottleneck of an MLLM only, not its reasoning.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List, Optional, Tuple

import answer_rule as ar
from engines import BadImage, Reader, make_engine

DEFAULT_PORT = 8901
MAX_BODY = 64 * 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: Optional[str] = None, code: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


_DATA_URL_RE = re.compile(r"^data:([^,;]*)((?:;[^,;]*)*),(.*)$", re.DOTALL)


def decode_data_url(url: str, param: str) -> bytes:
    if not isinstance(url, str) or not url:
        raise ApiError(400, "image_url.url must be a non-empty string", param=param, code="invalid_image_url")
    low = url[:16].lower()
    if low.startswith("http://") or low.startswith("https://"):
        raise ApiError(400, "remote image URLs are not supported: the reader emulator is offline; "
                            "send the image inline as a data: URL (data:image/png;base64,...)",
                       param=param, code="invalid_image_url")
    m = _DATA_URL_RE.match(url)
    if not m:
        raise ApiError(400, "image_url.url must be a data: URL (data:image/...;base64,...)",
                       param=param, code="invalid_image_url")
    mime, params, payload = m.group(1).lower(), m.group(2).lower(), m.group(3)
    if mime and not (mime.startswith("image/") or mime == "application/octet-stream"):
        raise ApiError(400, f"data URL media type {mime!r} is not an image", param=param, code="invalid_image")
    if ";base64" not in params:
        raise ApiError(400, "data URL must be base64-encoded (;base64,)", param=param, code="invalid_image")
    try:
        payload = re.sub(r"\s+", "", payload)
        data = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ApiError(400, f"invalid base64 in data URL: {e}", param=param, code="invalid_image") from e
    if not data:
        raise ApiError(400, "empty image in data URL", param=param, code="invalid_image")
    return data


def parse_messages(req: dict) -> Tuple[List[str], List[Tuple[str, str]], List[Tuple[bytes, str]], int]:
    """-> (text of the first user message's parts, [(role, text)] of all messages,
    [(image bytes, param)] in message order, total characters of text)."""
    msgs = req.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ApiError(400, "'messages' must be a non-empty array", param="messages")
    first_user: Optional[List[str]] = None
    texts: List[Tuple[str, str]] = []
    images: List[Tuple[bytes, str]] = []
    nchars = 0
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise ApiError(400, f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = m.get("role")
        if not isinstance(role, str) or role not in ("system", "developer", "user", "assistant", "tool", "function"):
            raise ApiError(400, f"messages[{i}].role is missing or invalid", param=f"messages[{i}].role")
        content = m.get("content")
        parts_text: List[str] = []
        if content is None:
            pass
        elif isinstance(content, str):
            parts_text.append(content)
        elif isinstance(content, list):
            for j, p in enumerate(content):
                pp = f"messages[{i}].content[{j}]"
                if not isinstance(p, dict) or not isinstance(p.get("type"), str):
                    raise ApiError(400, f"{pp} must be an object with a 'type'", param=pp)
                t = p["type"]
                if t in ("text", "input_text"):
                    if not isinstance(p.get("text"), str):
                        raise ApiError(400, f"{pp}.text must be a string", param=pp + ".text")
                    parts_text.append(p["text"])
                elif t in ("image_url", "input_image"):
                    iu = p.get("image_url")
                    url = iu.get("url") if isinstance(iu, dict) else iu
                    images.append((decode_data_url(url, pp + ".image_url.url"), pp))
                else:
                    raise ApiError(400, f"{pp}.type {t!r} is not supported (text, image_url)", param=pp + ".type")
        else:
            raise ApiError(400, f"messages[{i}].content must be a string, an array or null",
                           param=f"messages[{i}].content")
        text = "\n".join(parts_text)
        nchars += len(text)
        texts.append((role, text))
        if role == "user" and first_user is None:
            first_user = parts_text
    if first_user is None:
        raise ApiError(400, "no user message in 'messages'", param="messages")
    return first_user, texts, images, nchars


class App:
    def __init__(self, reader: Reader, model: str, max_body: int = MAX_BODY, quiet: bool = False):
        self.reader = reader
        self.model = model
        self.max_body = max_body
        self.quiet = quiet
        self.started = int(time.time())

    def log(self, msg: str) -> None:
        if not self.quiet:
            sys.stderr.write(msg + "\n")
            sys.stderr.flush()

    def complete(self, req: dict) -> Tuple[dict, dict]:
        """-> (chat.completion object, log fields). Raises ApiError."""
        if not isinstance(req, dict):
            raise ApiError(400, "request body must be a JSON object")
        model = req.get("model")
        if model is not None and not isinstance(model, str):
            raise ApiError(400, "'model' must be a string", param="model")
        first_user, texts, images, nchars = parse_messages(req)
        max_side = self.reader.max_side
        # Extension: a per-request R ("reader_max_side"), for experiments only.
        if req.get("reader_max_side") is not None:
            ms = req.get("reader_max_side")
            if not isinstance(ms, int) or isinstance(ms, bool) or not (16 <= ms <= 8192):
                raise ApiError(400, "'reader_max_side' must be an integer in 16..8192", param="reader_max_side")
            max_side = ms

        user_text = "\n".join(t for r, t in texts if r == "user")
        verification = ar.is_verification(user_text)
        q = ar.parse_question(user_text if verification else "\n".join(first_user))

        ocr: List[List[ar.Line]] = []
        eng_s, hits = 0.0, 0
        for data, param in images:
            try:
                lines, dt, hit = self.reader.read_bytes(data, max_side)
            except BadImage as e:
                raise ApiError(400, f"{param}: {e}", param=param + ".image_url.url", code="invalid_image") from e
            ocr.append(lines)
            eng_s += dt
            hits += hit

        if verification:
            ok = ar.verify(ocr, q)
            ans = "1" if ok else "0"
            if not images:
                content = "There is no image to check. \\boxed{0}"
            elif ok:
                content = "The last image shows the text needed to answer the question legibly. \\boxed{1}"
            else:
                content = "The last image does not show the text needed to answer the question legibly. \\boxed{0}"
            rule = "verify"
        else:
            d = ar.answer(ocr, q)
            ans = d.answer or ""
            rule = d.rule
            if not images:
                content = "There is no image in the request, so I cannot read the answer. \\boxed{}"
            elif d.answer is None:
                what = f'the value for "{q.key}"' if q.key else f"a {q.fmt}"
                content = f"I could not read {what} in the image. \\boxed{{}}"
            elif d.rule == "key":
                content = f'The text next to "{q.key}" reads {d.answer}. \\boxed{{{d.answer}}}'
            else:
                content = f"The first {q.fmt} I can read in the image is {d.answer}. \\boxed{{{d.answer}}}"

        prompt_tokens = nchars // 4 + 256 * len(images)
        completion_tokens = max(1, len(content) // 4)
        resp = {
            "id": "chatcmpl-" + uuid.uuid4().hex[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model or self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": "stop",
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        fields = {
            "images": len(images), "cached": hits, "ocr_ms": round(eng_s * 1000, 1), "R": max_side,
            "verify": int(verification), "key": q.key, "fmt": q.fmt, "rule": rule, "answer": ans,
        }
        return resp, fields


def sse_chunks(resp: dict, include_usage: bool) -> List[bytes]:
    base = {"id": resp["id"], "object": "chat.completion.chunk", "created": resp["created"], "model": resp["model"]}
    content = resp["choices"][0]["message"]["content"]
    chunks = [
        dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": content}, "logprobs": None,
                             "finish_reason": None}]),
        dict(base, choices=[{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]),
    ]
    if include_usage:
        chunks.append(dict(base, choices=[], usage=resp["usage"]))
    out = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]
    out.append(b"data: [DONE]\n\n")
    return out


class Handler(BaseHTTPRequestHandler):
    server_version = "etchr-reader-emulator/0.1"
    protocol_version = "HTTP/1.1"
    app: App = None  # set on the subclass

    def log_message(self, fmt, *args):  # silence the default access log; we log our own line
        pass

    def _send_json(self, status: int, obj: dict, close: bool = False) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _error(self, e: ApiError, close: bool = False) -> None:
        self._send_json(e.status, e.body(), close=close)

    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        limit = self.app.max_body
        if "chunked" in te:
            buf = bytearray()
            while True:
                line = self.rfile.readline(1024)
                try:
                    n = int(line.split(b";")[0].strip() or b"x", 16)
                except ValueError:
                    raise ApiError(400, "malformed chunked body")
                if n == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(buf)
                if len(buf) + n > limit:
                    raise ApiError(413, f"request body exceeds {limit} bytes", code="request_too_large")
                buf += self.rfile.read(n)
                self.rfile.readline(8)
        cl = self.headers.get("Content-Length")
        if cl is None:
            raise ApiError(411, "Content-Length required", code="length_required")
        try:
            n = int(cl)
            if n < 0:
                raise ValueError
        except ValueError:
            raise ApiError(400, "invalid Content-Length")
        if n > limit:
            raise ApiError(413, f"request body of {n} bytes exceeds the limit of {limit} bytes",
                           code="request_too_large")
        return self.rfile.read(n)

    def _drain(self) -> None:
        try:
            left = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        left = min(left, 4 * self.app.max_body + (1 << 20))
        try:
            self.connection.settimeout(5)
            while left > 0:
                got = self.rfile.read(min(left, 1 << 20))
                if not got:
                    break
                left -= len(got)
        except OSError:
            pass

    def do_GET(self):
        path = self.path.split("?")[0].rstrip("/")
        if path == "/v1/models":
            self._send_json(200, {"object": "list", "data": [
                {"id": self.app.model, "object": "model", "created": self.app.started, "owned_by": "etchr-bench"}]})
        elif path == f"/v1/models/{self.app.model}":
            self._send_json(200, {"id": self.app.model, "object": "model", "created": self.app.started,
                                  "owned_by": "etchr-bench"})
        elif path in ("/health", "/healthz"):
            r = self.app.reader
            self._send_json(200, {"status": "ok", "engine": r.engine.name, "max_side": r.max_side,
                                  "cache_hits": r.hits, "cache_misses": r.misses})
        else:
            self._error(ApiError(404, f"no route GET {path}", code="not_found"))

    def do_POST(self):
        path = self.path.split("?")[0].rstrip("/")
        t0 = time.perf_counter()
        try:
            try:
                body = self._read_body()
            except ApiError as e:
                # the body was not (fully) read: answer, drain what the client is still sending
                # (bounded) so that it can read the answer, and drop the connection
                self._error(e, close=True)
                self._drain()
                self.app.log(f"[reader] POST {path} status={e.status} error={e.message!r}")
                return
            if path != "/v1/chat/completions":
                raise ApiError(404, f"no route POST {path}", code="not_found")
            try:
                req = json.loads(body)
            except (ValueError, UnicodeDecodeError) as e:
                raise ApiError(400, f"malformed JSON body: {e}", code="invalid_json") from e
            resp, fields = self.app.complete(req)
            stream = req.get("stream") is True
            if stream:
                so = req.get("stream_options")
                inc = isinstance(so, dict) and so.get("include_usage") is True
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.close_connection = True
                self.end_headers()
                for c in sse_chunks(resp, inc):
                    self.wfile.write(c)
                self.wfile.flush()
            else:
                self._send_json(200, resp)
            f = fields
            self.app.log(
                f"[reader] 200 {(time.perf_counter() - t0) * 1000:.0f}ms engine={self.app.reader.engine.name} "
                f"R={f['R']} images={f['images']} cached={f['cached']} ocr_ms={f['ocr_ms']} verify={f['verify']} "
                f"key={json.dumps(f['key'])} fmt={f['fmt']} rule={f['rule']} answer={json.dumps(f['answer'])}"
                + (" stream" if stream else ""))
        except ApiError as e:
            self._error(e)
            self.app.log(f"[reader] POST {path} status={e.status} error={e.message!r}")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # never crash the server
            self.app.log(f"[reader] POST {path} status=500 internal error: {type(e).__name__}: {e}")
            try:
                self._error(ApiError(500, f"internal error: {type(e).__name__}", type_="server_error"))
            except Exception:
                pass


def make_server(app: App, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"app": app})
    srv = ThreadingHTTPServer((host, port), handler)
    srv.daemon_threads = True
    return srv


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="ETCHR reader emulator (OCR behind the OpenAI chat API)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port (printed)")
    p.add_argument("--model", default="reader-emulator", help="model id listed by /v1/models")
    p.add_argument("--engine", choices=["rapidocr", "tesseract"], default="rapidocr")
    p.add_argument("--max-side", type=int, default=1024, help="R: longest side after downscale (never upscaled)")
    p.add_argument("--cache-size", type=int, default=512, help="OCR results kept (LRU)")
    p.add_argument("--max-body-mb", type=float, default=64.0)
    p.add_argument("--rapid-cls", action="store_true",
                   help="rapidocr: enable the 180-degree text classifier (off: upside-down text stays unread)")
    p.add_argument("--threads", type=int, default=-1, help="rapidocr: onnxruntime intra-op threads (-1: all)")
    p.add_argument("--tess-upscale", type=float, default=2.0, help="tesseract: enlarge the downscaled image by this")
    p.add_argument("--tess-psm", type=int, default=11, help="tesseract: page segmentation mode")
    p.add_argument("--quiet", action="store_true", help="no per-request log lines")
    a = p.parse_args(argv)
    if a.max_side < 16:
        p.error("--max-side must be at least 16")
    engine = make_engine(a.engine, use_cls=a.rapid_cls, threads=a.threads,
                         tess_upscale=a.tess_upscale, tess_psm=a.tess_psm)
    app = App(Reader(engine, a.max_side, a.cache_size), a.model, int(a.max_body_mb * 1024 * 1024), a.quiet)
    srv = make_server(app, a.host, a.port)
    host, port = srv.server_address[:2]
    print(f"listening on {host}:{port}", flush=True)
    sys.stderr.write(f"[reader] engine={a.engine} R={a.max_side} model={a.model}\n")
    sys.stderr.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
