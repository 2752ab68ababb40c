"""Tests of the reader emulator: answer rules (no engine), real-engine reads, and the HTTP server.

    bench/.venv/bin/python -m pytest -q bench/reader
"""
import base64
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from PIL import Image, ImageDraw, ImageFont

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import answer_rule as ar  # noqa: E402
from answer_rule import Line  # noqa: E402
from engines import Reader, downscale, make_engine  # noqa: E402
import server  # noqa: E402

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
needs_font = pytest.mark.skipif(not os.path.exists(FONT), reason="DejaVu font missing")


def L(text, x1, y1, x2, y2):
    return Line(text, (x1, y1, x2, y2))


# ---------------------------------------------------------------- question parsing

def test_find_key_straight_and_curly_quotes():
    assert ar.find_key('What is the code next to "Pump 7"?') == "Pump 7"
    assert ar.find_key("What code is shown for \u201cValve 3\u201d on the blue box?") == "Valve 3"
    assert ar.find_key('first "A 1" then "B 2"') == "A 1"
    assert ar.find_key("no quotes here") is None
    assert ar.find_key('empty "" quotes') is None


def test_find_format_defaults_to_code():
    assert ar.find_format("What is the code of the red tag?") == "code"
    assert ar.find_format("What number is written on the bar?") == "number"
    assert ar.find_format("What value is annotated on the tallest bar?") == "number"
    assert ar.find_format("Read the tag.") == "code"
    # the first named format wins
    assert ar.find_format("Which code? Not the number.") == "code"
    # whole words only
    assert ar.find_format("encoded valuesque") == "code"


def test_is_verification():
    assert ar.is_verification(r"Does the edited image help? Answer \boxed{1} for yes or \boxed{0} for no.")
    assert not ar.is_verification(r"Answer with \boxed{ANSWER}.")
    assert not ar.is_verification(r"Only \boxed{1}.")


# ---------------------------------------------------------------- answer formats

def test_code_format():
    assert ar.as_code("K3MX9") == "K3MX9"
    assert ar.as_code("(K3MX9).") == "K3MX9"
    assert ar.as_code("k3mx9") == "K3MX9"  # lowercase read of a code with a digit
    assert ar.as_code("WTDDN") == "WTDDN"
    assert ar.as_code("K3MX9Q7") is None  # 7 chars
    assert ar.as_code("K3MX") is None  # 4 chars
    for bad in ("K0MX9", "KOMX9", "K1MX9", "KLMX9", "KSMX9", "K5MX9", "KBMX9", "K8MX9", "KZMX9", "K2MX9"):
        assert ar.as_code(bad) is None, bad  # look-alikes are never "fixed"
    assert ar.as_code("Meter") is None  # an ordinary word is not a code
    assert ar.as_code("METER") == "METER"


def test_number_format():
    assert ar.as_number("42") == "42"
    assert ar.as_number("3.75") == "3.75"
    assert ar.as_number("-1.5") == "-1.5"
    assert ar.as_number("\u22121.5") == "-1.5"
    assert ar.as_number("(12.5).") == "12.5"
    assert ar.as_number("12a") is None
    assert ar.as_number("K3MX9") is None


# ---------------------------------------------------------------- key rule on synthetic OCR

def test_key_token_same_line():
    lines = [L("Pump 7: K3MX9", 100, 300, 600, 360)]
    assert ar.key_token(lines, "Pump 7") == "K3MX9"
    assert ar.key_token(lines, "pump 7") == "K3MX9"  # case-insensitive


def test_key_token_tolerates_ocr_spacing():
    assert ar.key_token([L("Pump7:K3MX9", 0, 0, 100, 10)], "Pump 7") == "K3MX9"
    assert ar.key_token([L("P ump 7 : K3MX9 extra", 0, 0, 100, 10)], "Pump 7") == "K3MX9"
    assert ar.key_token([L("Pump 7 - K3MX9", 0, 0, 100, 10)], "Pump 7") == "K3MX9"


def test_key_token_requires_word_boundary():
    lines = [L("Pump 71: AAAAA", 0, 0, 100, 10), L("Pump 7: K3MX9", 0, 50, 100, 60)]
    assert ar.key_token(lines, "Pump 7") == "K3MX9"
    assert ar.key_token([L("Pump 71: AAAAA", 0, 0, 100, 10)], "Pump 7") is None


def test_key_token_number_keeps_sign():
    assert ar.key_token([L("Q3: -1.5", 0, 0, 100, 10)], "Q3") == "-1.5"
    assert ar.key_token([L("Q3 = 42.", 0, 0, 100, 10)], "Q3") == "42"


def test_key_at_line_end_takes_line_below():
    lines = [
        L("Far away: NOPE", 800, 140, 990, 160),
        L("Pump 7:", 100, 100, 200, 120),
        L("K3MX9", 105, 125, 190, 145),
        L("Other: WRONG", 100, 400, 300, 420),
    ]
    assert ar.key_token(lines, "Pump 7") == "K3MX9"


def test_key_at_line_end_with_nothing_under_it():
    lines = [L("Pump 7:", 100, 100, 200, 120), L("FAR", 600, 125, 700, 145), L("LOW", 100, 400, 200, 420)]
    assert ar.key_token(lines, "Pump 7") is None


def test_key_line_split_by_ocr_continues_to_the_right():
    lines = [L("Unit 7:", 100, 100, 200, 130), L("D6W4Q", 215, 101, 320, 131), L("Unit 5: X", 120, 140, 300, 170)]
    assert ar.key_token(lines, "Unit 7") == "D6W4Q"


def test_answer_looks_at_last_image_first_then_earlier():
    first = [L("Pump 7: AAAAA", 0, 0, 100, 10)]
    last = [L("Pump 7: K3MX9", 0, 0, 100, 10)]
    q = ar.parse_question('What is the code of "Pump 7"?')
    d = ar.answer([first, last], q)
    assert (d.answer, d.rule, d.image_index) == ("K3MX9", "key", 1)
    d = ar.answer([first, [L("nothing", 0, 0, 10, 10)]], q)
    assert (d.answer, d.image_index) == ("AAAAA", 0)
    assert ar.answer([[], []], q).answer is None


def test_key_answer_is_normalised_for_codes():
    q = ar.parse_question('The code for "Pump 7"?')
    assert ar.answer([[L("Pump 7: k3mx9.", 0, 0, 100, 10)]], q).answer == "K3MX9"


def test_format_rule_reading_order_in_last_image_only():
    lines = [
        L("Title words", 0, 0, 300, 20),
        L("right K7MX9", 400, 102, 600, 118),
        L("left: ACDEF", 0, 100, 200, 120),  # same row, further left -> first
        L("T9ZZZ 42 3.75", 0, 200, 300, 220),
    ]
    q = ar.parse_question("What is the code on the tag?")
    assert ar.answer([lines], q).answer == "ACDEF"
    qn = ar.parse_question("What value is shown?")
    assert ar.answer([lines], qn).answer == "42"
    # rule 2 reads the last image only
    assert ar.answer([lines, [L("nothing here", 0, 0, 10, 10)]], q).answer is None


def test_verify_rule():
    good = [L("Pump 7: K3MX9", 0, 0, 100, 10)]
    garbled = [L("Pump 7: K3M", 0, 0, 100, 10)]
    q = ar.parse_question('"Pump 7" code')
    assert ar.verify([[], good], q)
    assert not ar.verify([good, garbled], q)  # only the last image counts
    qf = ar.parse_question("What number is on the bar?")
    assert ar.verify([[L("Sales 42", 0, 0, 10, 10)]], qf)
    assert not ar.verify([[L("Sales", 0, 0, 10, 10)]], qf)
    assert not ar.verify([], qf)


# ---------------------------------------------------------------- images

def png_bytes(im):
    b = io.BytesIO()
    im.save(b, "PNG")
    return b.getvalue()


def data_url(im):
    return "data:image/png;base64," + base64.b64encode(png_bytes(im)).decode()


def draw_tag(w, h, text, xy, size):
    im = Image.new("RGB", (w, h), "white")
    ImageDraw.Draw(im).text(xy, text, font=ImageFont.truetype(FONT, size), fill="black")
    return im


@pytest.fixture(scope="module")
def big_tag():
    return draw_tag(1000, 700, "Pump 7: K3MX9", (100, 300), 64)


@pytest.fixture(scope="module")
def tiny_tag():
    # 9 px text on a 4000x3000 canvas: at R=1024 it shrinks to ~2 px
    return draw_tag(4000, 3000, "Pump 7: K3MX9", (2000, 1500), 9)


@pytest.fixture(scope="module")
def tiny_crop(tiny_tag):
    return tiny_tag.crop((1900, 1450, 2200, 1560))


def test_downscale_never_upscales():
    im = Image.new("RGB", (400, 300))
    assert downscale(im, 1024).size == (400, 300)
    assert downscale(Image.new("RGB", (4000, 3000)), 1024).size == (1024, 768)
    assert downscale(Image.new("RGB", (1000, 3000)), 768).size == (256, 768)


@pytest.fixture(scope="module")
def rapid_reader():
    return Reader(make_engine("rapidocr"), max_side=1024)


def ask(reader, images, question, extra_user=None):
    content = [{"type": "text", "text": question}] + [
        {"type": "image_url", "image_url": {"url": data_url(im)}} for im in images]
    msgs = [{"role": "user", "content": content}]
    if extra_user:
        msgs += [{"role": "assistant", "content": "Let me look."}, {"role": "user", "content": extra_user}]
    resp, fields = server.App(reader, "reader-emulator", quiet=True).complete({"messages": msgs})
    return resp["choices"][0]["message"]["content"], fields


@needs_font
def test_engine_reads_large_tag(rapid_reader, big_tag):
    content, f = ask(rapid_reader, [big_tag], 'What is the code next to "Pump 7"?')
    assert content.endswith(r"\boxed{K3MX9}")
    assert f["rule"] == "key"
    # rule 2 (format) finds the same code
    content, _ = ask(rapid_reader, [big_tag], "What code is on the image?")
    assert content.endswith(r"\boxed{K3MX9}")


@needs_font
def test_engine_discriminates_tiny_text_until_cropped(rapid_reader, tiny_tag, tiny_crop):
    content, _ = ask(rapid_reader, [tiny_tag], 'What is the code next to "Pump 7"?')
    assert content.endswith(r"\boxed{}"), content
    content, _ = ask(rapid_reader, [tiny_crop], 'What is the code next to "Pump 7"?')
    assert content.endswith(r"\boxed{K3MX9}"), content
    # [original, zoomed] as the sidecar sends it: answered from the last image
    content, f = ask(rapid_reader, [tiny_tag, tiny_crop], 'What is the code next to "Pump 7"?')
    assert content.endswith(r"\boxed{K3MX9}") and f["images"] == 2
    # [zoomed, original]: the last image fails, the earlier one is consulted
    content, _ = ask(rapid_reader, [tiny_crop, tiny_tag], 'What is the code next to "Pump 7"?')
    assert content.endswith(r"\boxed{K3MX9}")


@needs_font
def test_engine_max_side_matters(rapid_reader):
    # 16 px text on 2400 px: readable at R=2400, not after the downscale to 768
    im = draw_tag(2400, 1600, "Valve 3: HX7QW", (1000, 800), 16)
    q = 'What is the code of "Valve 3"?'
    hi = Reader(rapid_reader.engine, max_side=2400)
    assert ask(hi, [im], q)[0].endswith(r"\boxed{HX7QW}")
    lo = Reader(rapid_reader.engine, max_side=768)
    assert ask(lo, [im], q)[0].endswith(r"\boxed{}")


@needs_font
def test_verification_requests(rapid_reader, tiny_tag, tiny_crop):
    v = r'Is the question answerable from the last image? Question: the code of "Pump 7". Reply \boxed{1} or \boxed{0}.'
    content, f = ask(rapid_reader, [tiny_tag, tiny_crop], v)
    assert content.endswith(r"\boxed{1}") and f["verify"] == 1
    content, _ = ask(rapid_reader, [tiny_crop, tiny_tag], v)
    assert content.endswith(r"\boxed{0}")
    # verification asked in a later user turn: key taken from the first quoted key in user text
    content, _ = ask(rapid_reader, [tiny_tag, tiny_crop], 'What is the code of "Pump 7"?',
                     extra_user=r"Does the last image show it? Answer \boxed{1} or \boxed{0}.")
    assert content.endswith(r"\boxed{1}")


@needs_font
def test_cache_hits(rapid_reader, big_tag):
    r = Reader(rapid_reader.engine, max_side=1024)
    data = png_bytes(big_tag)
    _, _, hit1 = r.read_bytes(data)
    _, _, hit2 = r.read_bytes(data)
    _, _, hit3 = r.read_bytes(data, 768)  # another R is another entry
    assert (hit1, hit2, hit3) == (False, True, False)
    assert r.hits == 1 and r.misses == 2


@needs_font
@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr not installed")
def test_tesseract_engine_cross_check(big_tag, tiny_tag, tiny_crop):
    r = Reader(make_engine("tesseract"), max_side=1024)
    q = 'What is the code next to "Pump 7"?'
    assert ask(r, [big_tag], q)[0].endswith(r"\boxed{K3MX9}")
    assert ask(r, [tiny_tag], q)[0].endswith(r"\boxed{}")
    assert ask(r, [tiny_crop], q)[0].endswith(r"\boxed{K3MX9}")


# ---------------------------------------------------------------- HTTP

@pytest.fixture(scope="module")
def http_server(rapid_reader):
    app = server.App(rapid_reader, "reader-emulator", max_body=2 * 1024 * 1024, quiet=True)
    srv = server.make_server(app, "127.0.0.1", 0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def post(base, path, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def chat(images, text, **kw):
    content = [{"type": "text", "text": text}] + [
        {"type": "image_url", "image_url": {"url": u}} for u in images]
    return dict({"model": "reader-emulator", "messages": [{"role": "user", "content": content}]}, **kw)


def assert_openai_error(status, body, want_status):
    assert status == want_status, body
    err = json.loads(body)["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    return err


def test_http_models(http_server):
    with urllib.request.urlopen(http_server + "/v1/models", timeout=10) as r:
        body = json.loads(r.read())
    assert [m["id"] for m in body["data"]] == ["reader-emulator"]


@needs_font
def test_http_chat_completion(http_server, big_tag):
    status, _, body = post(http_server, "/v1/chat/completions", chat([data_url(big_tag)], 'Code of "Pump 7"?'))
    assert status == 200, body
    resp = json.loads(body)
    assert resp["object"] == "chat.completion"
    assert resp["choices"][0]["message"]["content"].endswith(r"\boxed{K3MX9}")
    u = resp["usage"]
    assert u["prompt_tokens"] >= 256 and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    # plain string content, no image
    status, _, body = post(http_server, "/v1/chat/completions",
                           {"messages": [{"role": "user", "content": "What is the code?"}]})
    assert status == 200 and json.loads(body)["choices"][0]["message"]["content"].endswith(r"\boxed{}")


@needs_font
def test_http_stream(http_server, big_tag):
    status, headers, body = post(http_server, "/v1/chat/completions",
                                 chat([data_url(big_tag)], 'Code of "Pump 7"?', stream=True,
                                      stream_options={"include_usage": True}))
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = [e[len("data: "):] for e in body.decode().split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.endswith(r"\boxed{K3MX9}")
    assert chunks[-1]["usage"]["total_tokens"] > 0


def test_http_rejects_remote_image_url(http_server):
    status, _, body = post(http_server, "/v1/chat/completions", chat(["https://example.com/a.png"], "code?"))
    err = assert_openai_error(status, body, 400)
    assert "offline" in err["message"] and err["param"].endswith("image_url.url")


def test_http_malformed_json(http_server):
    status, _, body = post(http_server, "/v1/chat/completions", b'{"messages": [')
    assert_openai_error(status, body, 400)


@pytest.mark.parametrize("payload", [
    {"messages": []},
    {"messages": "hi"},
    {"messages": [{"role": "user", "content": [{"type": "audio"}]}]},
    {"messages": [{"role": "system", "content": "only system"}]},
    [1, 2],
])
def test_http_invalid_requests(http_server, payload):
    status, _, body = post(http_server, "/v1/chat/completions", payload)
    assert_openai_error(status, body, 400)


def test_http_bad_images(http_server):
    for url in ("data:image/png;base64,@@@not-base64@@@",
                "data:image/png;base64," + base64.b64encode(b"definitely not an image").decode(),
                "data:text/plain;base64,aGVsbG8=",
                "ftp://x/y.png"):
        status, _, body = post(http_server, "/v1/chat/completions", chat([url], "code?"))
        assert_openai_error(status, body, 400)


def test_http_oversize_body(http_server):
    big = b'{"messages":"' + b"x" * (3 * 1024 * 1024) + b'"}'  # over this server's 2 MiB limit
    status, _, body = post(http_server, "/v1/chat/completions", big)
    err = assert_openai_error(status, body, 413)
    assert err["code"] == "request_too_large"


def test_http_unknown_route(http_server):
    status, _, body = post(http_server, "/v1/completions", {})
    assert_openai_error(status, body, 404)


@needs_font
def test_http_concurrent_requests(http_server, big_tag, tiny_crop):
    results = []

    def go(im):
        results.append(post(http_server, "/v1/chat/completions", chat([data_url(im)], 'Code of "Pump 7"?')))

    ts = [threading.Thread(target=go, args=(im,)) for im in (big_tag, tiny_crop, big_tag, tiny_crop)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert len(results) == 4
    for status, _, body in results:
        assert status == 200
        assert json.loads(body)["choices"][0]["message"]["content"].endswith(r"\boxed{K3MX9}")


@needs_font
def test_real_server_process_on_port_0(big_tag):
    """Start server.py as a process on port 0, read the bound port from stdout, post to it."""
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "server.py"), "--port", "0", "--model", "emu-test"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
        base = "http://" + line.split()[-1]
        with urllib.request.urlopen(base + "/v1/models", timeout=10) as r:
            assert json.loads(r.read())["data"][0]["id"] == "emu-test"
        status, _, body = post(base, "/v1/chat/completions", chat([data_url(big_tag)], 'Code of "Pump 7"?'))
        assert status == 200
        assert json.loads(body)["choices"][0]["message"]["content"].endswith(r"\boxed{K3MX9}")
        status, _, body = post(base, "/v1/chat/completions", b"not json")
        assert_openai_error(status, body, 400)
        assert proc.poll() is None  # still serving after the bad request
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert "[reader] 200" in err and 'answer="K3MX9"' in err
