"""Drives ETCHR's /v1/chat/completions with the official `openai` package.

Usage: python3 tests/compat/openai_client.py BASE_URL   (BASE_URL ends in /v1)

Asserts on what the client itself parses: a plain completion, a streamed one, one with an
image (which runs the reasoning loop and carries the trace in an extra `etchr` field), and one
with an image and the client's own tools (the upstream's tool call comes back to the client).
Exits non-zero on the first failure; prints OK at the end.
"""

import base64
import struct
import sys
import zlib

import openai


def tiny_png(w=16, h=12):
    raw = b"".join(
        b"\x00" + b"".join(bytes([(x * 16) % 256, (y * 20) % 256, 90]) for x in range(w))
        for y in range(h))

    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def main(base_url):
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=30)

    plain = client.chat.completions.create(
        model="mock-model", messages=[{"role": "user", "content": "hi"}])
    assert plain.choices[0].message.content == "hello from mock", plain
    assert plain.usage.total_tokens == 15, plain.usage

    stream = client.chat.completions.create(
        model="mock-model", messages=[{"role": "user", "content": "hi"}], stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello world", text

    url = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
    msg = [{"role": "user", "content": [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": url}}]}]
    with_image = client.chat.completions.create(model="mock-model", messages=msg)
    assert with_image.object == "chat.completion", with_image
    assert "\\boxed{1}" in with_image.choices[0].message.content, with_image
    etchr = with_image.model_extra["etchr"]
    assert etchr["answer"] == "1", etchr
    assert with_image.usage.total_tokens == 30, with_image.usage

    streamed = client.chat.completions.create(model="mock-model", messages=msg, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert "\\boxed{1}" in text, text

    # The client's own tools ride along on an image request; the upstream's call comes back.
    tools = [{"type": "function", "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    called = client.chat.completions.create(model="mock-model", messages=msg, tools=tools)
    assert called.choices[0].finish_reason == "tool_calls", called
    call = called.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather", call
    assert call.function.arguments == '{"city":"Oslo"}', call
    print("OK")


if __name__ == "__main__":
    main(sys.argv[1])
