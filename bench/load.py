"""The load generator: wrk with small Lua scripts rendered per scenario (bench/README.md).

Every scenario ends with the same ``done`` hook, which prints one machine-readable line; Python
parses it. Lua cannot compute HMACs, so signed requests are signed here: one body and one
signature per scenario with a fresh ``Idempotency-Key`` per request (it is not signed), or, for
Svix deliveries whose id is signed, a pre-signed list each thread walks through its own stride.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

DONE = r"""
function done(summary, latency, requests)
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""

THREAD_IDS = r"""
local next_thread = 0
function setup(thread)
  next_thread = next_thread + 1
  thread:set("tid", next_thread)
end
"""


def lua_string(value: str | bytes) -> str:
    """A Lua string literal holding exactly these bytes."""
    raw = value.encode() if isinstance(value, str) else value
    return (
        '"'
        + "".join(
            f"\\{byte:03d}" if not 32 <= byte < 127 or byte in b'"\\' else chr(byte) for byte in raw
        )
        + '"'
    )


def lua_headers(headers: dict[str, str]) -> str:
    return "{" + ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()) + "}"


def fixed(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> str:
    """The same request every time."""
    return f"""
local req = wrk.format({lua_string(method)}, {lua_string(path)}, {lua_headers(headers)},
                       {lua_string(body) if body else "nil"})
function request() return req end
{DONE}"""


def oversize(path: str, headers: dict[str, str], size: int) -> str:
    """A body of ``size`` bytes, built in Lua rather than written into the script."""
    return f"""
local req = wrk.format("POST", {lua_string(path)}, {lua_headers(headers)},
                       string.rep("a", {size}))
function request() return req end
{DONE}"""


def fresh_keys(path: str, headers: dict[str, str], body: bytes, run: str) -> str:
    """One signed body, a new ``Idempotency-Key`` per request (per-thread counters)."""
    return f"""
{THREAD_IDS}
local n = 0
local headers = {lua_headers(headers)}
function request()
  n = n + 1
  headers["Idempotency-Key"] = {lua_string(run)} .. "-" .. tid .. "-" .. n
  return wrk.format("POST", {lua_string(path)}, headers, {lua_string(body)})
end
{DONE}"""


def random_paths(prefix: str, alphabet: str, length: int, headers: dict, body: bytes) -> str:
    """Requests to ``prefix`` + a random well-formed id each time (seeded per thread)."""
    return f"""
{THREAD_IDS}
local alphabet = {lua_string(alphabet)}
local headers = {lua_headers(headers)}
local body = {lua_string(body)}
function init(args) math.randomseed(os.time() * 1000 + tid) end
function request()
  local id = {{}}
  for i = 1, {length} do
    local k = math.random(1, #alphabet)
    id[i] = alphabet:sub(k, k)
  end
  return wrk.format("POST", {lua_string(prefix)} .. table.concat(id), headers, body)
end
{DONE}"""


def presigned(
    path: str, requests: list[tuple[dict[str, str], bytes]], threads: int, data_file: Path
) -> str:
    """Each thread walks its own stride of pre-signed requests, so none is sent twice.

    The requests go to ``data_file``, one line per header value and one for the body (bodies
    are single-line JSON), since LuaJIT cannot hold thousands of literal tables in one chunk.
    """
    names = list(requests[0][0])
    with data_file.open("wb") as out:
        for headers, body in requests:
            assert b"\n" not in body
            for name in names:
                out.write(headers[name].encode() + b"\n")
            out.write(body + b"\n")
    fields = "{" + ", ".join(lua_string(name) for name in names) + "}"
    return f"""
{THREAD_IDS}
local names = {fields}
local items = {{}}
function init(args)
  local file = assert(io.open({lua_string(str(data_file))}, "rb"))
  while true do
    local headers = {{["Content-Type"] = "application/json"}}
    for _, name in ipairs(names) do
      local value = file:read("*l")
      if value == nil then file:close() return end
      headers[name] = value
    end
    items[#items + 1] = {{headers, file:read("*l")}}
  end
end
local i = 0
function request()
  local item = items[((tid - 1) + i * {threads}) % #items + 1]
  i = i + 1
  return wrk.format("POST", {lua_string(path)}, item[1], item[2])
end
{DONE}"""


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    non2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> int:
        return self.requests - self.non2xx


def combined(*results: Result) -> Result:
    """Phases of one server counted as one: requests and seconds add up; the percentiles are
    the slowest phase's (wrk reports no histogram to merge)."""
    return Result(
        requests=sum(r.requests for r in results),
        seconds=sum(r.seconds for r in results),
        non2xx=sum(r.non2xx for r in results),
        socket_errors=sum(r.socket_errors for r in results),
        p50_ms=max(r.p50_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
    )


def run(url: str, script: str, seconds: float, connections: int = 8, threads: int = 2) -> Result:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is missing: `apt-get install wrk` (make bench does it)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    try:
        out = subprocess.run(
            [
                wrk,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                file.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
    finally:
        Path(file.name).unlink()
    line = next((line for line in out.stdout.splitlines() if line.startswith("BENCH ")), None)
    if out.returncode or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout}")
    data = json.loads(line[len("BENCH ") :])
    return Result(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        non2xx=data["non2xx"],
        socket_errors=data["socket_errors"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
    )
