"""A minimal OpenAI-compatible upstream for the schemathesis run: every chat completion answers
`\\boxed{1}` (plain or streamed), /v1/models lists one model. Not a mock of any behaviour under
test: it only gives the sidecar's loop and proxy routes something real to talk to.

Usage: python3 stub_upstream.py PORT
"""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(model):
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "It is \\boxed{1}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/").endswith("/models"):
            self.send_json(200, {"object": "list", "data": [{"id": "stub", "object": "model", "owned_by": "stub"}]})
        else:
            self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            req = None
        if not isinstance(req, dict) or not self.path.endswith("/chat/completions"):
            self.send_json(400, {"error": {"message": "bad request", "type": "invalid_request_error"}})
            return
        model = req.get("model") if isinstance(req.get("model"), str) else "stub"
        if req.get("stream") is True:
            body = completion(model)
            chunk = {
                "id": body["id"], "object": "chat.completion.chunk", "created": body["created"], "model": model,
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "It is \\boxed{1}"}, "finish_reason": "stop"}],
            }
            data = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_json(200, completion(model))


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
