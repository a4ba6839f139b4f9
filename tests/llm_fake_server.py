"""An OpenAI-compatible test server with fault modes, run as a real HTTP server on 127.0.0.1.

Start it with `python tests/llm_fake_server.py [--port 0]`; it prints `PORT <n>` once listening.
It plays a deterministic "model": judge prompts get a grade from word overlap (with logprobs on
request), listwise judge prompts a JSON list of such grades, generation prompts get queries made
from the document's words (labelled "question:"/"keywords:" lines when the prompt lays them out).
Like a naive model it obeys "ignore the above" when that text stands outside the <document>
delimiters.

Control (JSON): POST /_control {"delay": s, "faults": [...], "omit_usage": bool, "usage": {...},
"expect_key": str, "fail_all": "500", "judge_grades": [1, 3], "hold": bool} - judge_grades makes a degenerate
judge that only ever says those grades (the overlap grade moved to the nearest, ties upwards);
faults are consumed one per arriving LLM request:
"429:<retry-after s>", "500", "drop" (close without a reply), "malformed" (invalid JSON body),
"nograde" (a judge reply without a grade), "slow:<s>", "401" (echoes the Authorization header).
"empty" (a 200 reply with empty content), "length" (half the reply, finish_reason "length");
`fail_all` applies one of them to every request without a queued fault. A reply to a repair turn
("Your previous reply could not be used ...") answers the user turn before it.
GET /v1/models lists `models` (default ["fake"]), or answers `models_status` (e.g. 401, 404).
GET /_stats: requests, hits (200 replies sent, bad ones included), in_flight, max_in_flight,
arrivals, bodies (body -> count), rate_limited (429s sent). POST /_reset clears counters and settings.
Control "hold": true keeps every arriving LLM request waiting until "hold": false (or a reset), so a
test can act while a known number of requests is in flight; a client gone meanwhile gets nothing.
Control "short_by": n drops the last n lines of every generation reply (writing fewer than asked).
Control "total_slots": n makes GET /props answer {"total_slots": n}, as llama.cpp's server does
(else 404); /_stats counts them in props_requests.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import re
import time
from typing import Any

WORD = re.compile(r"[A-Za-z]{5,}")
QUESTION_FORMS = (
    "how does {a} relate to {b} for patients",
    "what should people know about {a} and {b}",
    "why would {a} matter when dealing with {b}",
    "which role does {a} play in {b} care",
)


class FakeLLM:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.delay = 0.0
        self.faults: list[str] = []
        self.fail_all: str | None = None
        self.omit_usage = False
        self.usage: dict[str, int] | None = None
        self.expect_key: str | None = None
        self.judge_grades: list[int] | None = None
        self.models: list[str] = ["fake"]
        self.models_status = 200
        self.rate_limited = 0
        self.requests = 0
        self.hits = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrivals: list[float] = []
        self.bodies: dict[str, int] = {}
        self.short_by = 0
        self.hold = False
        self.total_slots: int | None = None
        self.props_requests = 0

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "hits": self.hits,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "arrivals": self.arrivals,
            "bodies": self.bodies,
            "rate_limited": self.rate_limited,
            "props_requests": self.props_requests,
        }

    @staticmethod
    def overlap_grade(query: str, passage: str) -> int:
        q_words = {w.lower() for w in WORD.findall(query)}
        p_words = {w.lower() for w in WORD.findall(passage)}
        return min(3, len(q_words & p_words))

    def reply_text(self, body: dict[str, Any]) -> str:
        messages = body.get("messages") or [{"role": "user", "content": body.get("prompt", "")}]
        system = " ".join(m["content"] for m in messages if m["role"] == "system")
        users = [m["content"] for m in messages if m["role"] == "user"]
        user = users[-1]
        if user.startswith("Your previous reply could not be used") and len(users) > 1:
            user = users[-2]
        if "numbered passage" in system:
            query = user.split("<query>\n", 1)[-1].split("\n</query>", 1)[0]
            passages = re.findall(r'<passage id="\d+">\n(.*?)\n</passage>', user, re.DOTALL)
            return json.dumps({"grades": [self.overlap_grade(query, p) for p in passages]})
        if "relevance judge" in system:
            query = user.split("<query>\n", 1)[-1].split("\n</query>", 1)[0]
            passage = user.split("<passage>\n", 1)[-1].rsplit("\n</passage>", 1)[0]
            q_words = {w.lower() for w in WORD.findall(query)}
            p_words = {w.lower() for w in WORD.findall(passage)}
            grade = min(3, len(q_words & p_words))
            if self.judge_grades:
                grade = min(self.judge_grades, key=lambda g: (abs(g - grade), -g))
            return str(grade)
        head, _, rest = user.rpartition("<document>\n")
        document, _, outside = rest.partition("\n</document>")
        if "ignore the above" in (head + outside).lower():
            return '{"HACKED": true}'
        asked = re.search(r"Write (\d+)", user)
        count = int(asked.group(1)) if asked else 1
        layout = re.findall(r"^(question|keywords): \.\.\.$", outside, re.MULTILINE)  # one-call prompts
        words = list(dict.fromkeys(w.lower() for w in WORD.findall(document))) or ["nothing", "unknown"]
        seed = int(hashlib.sha256(document.encode()).hexdigest(), 16)
        lines = []
        for i in range(count):
            a = words[(seed + 3 * i) % len(words)]
            b = words[(seed // 7 + 5 * i + 1) % len(words)]
            keyword = layout[i] == "keywords" if layout else "keyword" in user.split("<document>", 1)[0]
            if keyword:
                c = words[(seed // 11 + 7 * i + 2) % len(words)]
                lines.append(f"{a} {b} {c} overview")
            else:
                lines.append(QUESTION_FORMS[i % len(QUESTION_FORMS)].format(a=a, b=b) + "?")
        if layout:
            lines = [f"{style}: {line}" for style, line in zip(layout, lines, strict=True)]
        lines = lines[: max(0, len(lines) - self.short_by)]
        return "\n".join(f"{i + 1}. {line}" for i, line in enumerate(lines))

    def response(self, body: dict[str, Any], text: str, finish: str = "stop") -> dict[str, Any]:
        chat = "messages" in body
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        if body.get("logprobs") and (text[:1].isdigit() or text.startswith('{"grades"')):
            # one token per character; a grade digit gets 0.7 with 0.1 on each other grade
            content = []
            for char in text if text.startswith("{") else text[0]:
                if char.isdigit():
                    top = [
                        {"token": str(g), "logprob": math.log(0.7 if str(g) == char else 0.1)}
                        for g in range(4)
                    ]
                    content.append({"token": char, "logprob": math.log(0.7), "top_logprobs": top})
                else:
                    content.append({"token": char, "logprob": 0.0, "top_logprobs": []})
            choice["logprobs"] = {"content": content}
        data: dict[str, Any] = {
            "id": "fake",
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": [choice],
        }
        if not self.omit_usage:
            data["usage"] = self.usage or {
                "prompt_tokens": len(json.dumps(body)) // 4,
                "completion_tokens": max(1, len(text) // 4),
            }
        return data


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers = {}
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        key, _, value = raw.decode("latin-1").partition(":")
        headers[key.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return method, path, headers, body


def http_response(status: int, payload: bytes, extra: dict[str, str] | None = None) -> bytes:
    reasons = {
        200: "OK",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        429: "Too Many Requests",
        500: "Server Error",
    }
    head = [
        f"HTTP/1.1 {status} {reasons.get(status, 'X')}",
        f"Content-Length: {len(payload)}",
        "Content-Type: application/json",
    ]
    head += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


async def serve_llm(
    llm: FakeLLM, reader: asyncio.StreamReader, headers: dict[str, str], raw: bytes
) -> bytes | None:
    llm.requests += 1
    llm.arrivals.append(time.time())
    llm.in_flight += 1
    llm.max_in_flight = max(llm.max_in_flight, llm.in_flight)
    try:
        fault = llm.faults.pop(0) if llm.faults else llm.fail_all
        if fault and fault.startswith("slow:"):
            await asyncio.sleep(float(fault.split(":", 1)[1]))
            fault = None
        if llm.delay:
            await asyncio.sleep(llm.delay)
        while llm.hold and not reader.at_eof():
            await asyncio.sleep(0.01)
        if reader.at_eof():  # the client gave up (timeout) or died: nothing is delivered or counted
            return None
        auth = headers.get("authorization", "")
        if fault == "401" or (llm.expect_key and auth != f"Bearer {llm.expect_key}"):
            return http_response(401, json.dumps({"error": f"bad key in header {auth!r}"}).encode())
        if fault and fault.startswith("429"):
            wait = fault.split(":", 1)[1] if ":" in fault else "1"
            llm.rate_limited += 1
            return http_response(429, b'{"error": "slow down"}', {"Retry-After": wait})
        if fault == "500":
            return http_response(500, b'{"error": "boom"}')
        if fault == "drop":
            return None
        if fault == "malformed":
            return http_response(200, b'{"choices": [{"message": ')
        body = json.loads(raw)
        text = "I think this passage is quite relevant." if fault == "nograde" else llm.reply_text(body)
        finish = "stop"
        if fault == "empty":
            text = ""
        elif fault == "length":
            text, finish = text[: len(text) // 2], "length"
        key = json.dumps(body, sort_keys=True)
        llm.bodies[key] = llm.bodies.get(key, 0) + 1
        llm.hits += 1
        return http_response(200, json.dumps(llm.response(body, text, finish)).encode())
    finally:
        llm.in_flight -= 1


async def handle(llm: FakeLLM, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            request = await read_request(reader)
            if request is None:
                break
            method, path, headers, raw = request
            if path == "/_stats":
                out: bytes | None = http_response(200, json.dumps(llm.stats()).encode())
            elif path == "/_reset":
                llm.reset()
                out = http_response(200, b"{}")
            elif path == "/_control":
                for key, value in json.loads(raw).items():
                    setattr(llm, key, value)
                out = http_response(200, b"{}")
            elif path.endswith("/models") and method == "GET":
                models = {"object": "list", "data": [{"id": m, "object": "model"} for m in llm.models]}
                status = llm.models_status
                out = http_response(status, json.dumps(models if status == 200 else {"error": "no"}).encode())
            elif path == "/props" and method == "GET":
                llm.props_requests += 1
                slots = llm.total_slots
                out = http_response(200 if slots else 404, json.dumps({"total_slots": slots}).encode())
            elif path.endswith(("/chat/completions", "/completions")) and method == "POST":
                out = await serve_llm(llm, reader, headers, raw)
            else:
                out = http_response(404, b'{"error": "not found"}')
            if out is None:  # "drop": close the connection without a reply
                break
            writer.write(out)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    llm = FakeLLM()
    server = await asyncio.start_server(lambda r, w: handle(llm, r, w), "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
