#!/usr/bin/env python3
"""A TCP proxy that can make its upstream misbehave, switched at run time.

It listens on one port and forwards every connection to an upstream
host:port (in the tests: the plain registry; moto's S3). A second port
serves a tiny HTTP control API:

    GET  /mode    the current mode, as below
    POST /mode    {"mode": "pass" | "reset" | "blackhole" | "cut_after" | "refuse",
                   "bytes": N, "direction": "up" | "down" | "both",
                   "then": "reset" | "pass", "delay_ms": N, "rate": BYTES_PER_S}
                  fields left out take their defaults (bytes 0, direction
                  "up", then "reset", delay_ms 0, rate 0 = unlimited);
                  answers the new mode
    GET  /stats   counters: connections, live, bytes_up, bytes_down, resets, cuts
    GET  /healthz 200

Modes, applied to every chunk of every connection, live ones included (so a
kept-alive connection that a client pools cannot escape a change):

    pass       forward, after `delay_ms` per chunk and at most `rate` bytes/s
    reset      close with a TCP RST: new connections at once, live ones too
    blackhole  accept and read, forward nothing, never answer, never close
    cut_after  forward `bytes` more bytes counted in `direction` ("up" is
               client to server: the body of a push), then reset every live
               connection and switch to mode `then` (default "reset": the
               server stays gone until a test sets "pass" again)
    refuse     stop listening, so connecting fails with ECONNREFUSED

The count of cut_after starts when the mode is set.
"""

import argparse
import asyncio
import json
import os
import socket
import struct
import sys
import time

MODES = ("pass", "reset", "blackhole", "cut_after", "refuse")
DIRECTIONS = ("up", "down", "both")


def log(**fields):
    print(json.dumps({"time": time.strftime("%H:%M:%S"), **fields}), flush=True)


def hard_close(writer):
    """Close with RST rather than FIN: SO_LINGER with a zero timeout."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


class Proxy:
    def __init__(self, listen_host, listen_port, upstream_host, upstream_port):
        self.listen_host, self.listen_port = listen_host, listen_port
        self.upstream = (upstream_host, upstream_port)
        self.server = None
        self.conns = set()  # (client_writer, upstream_writer or None)
        self.set_mode({"mode": "pass"})
        self.stats = {"connections": 0, "bytes_up": 0, "bytes_down": 0, "resets": 0, "cuts": 0}

    def set_mode(self, spec):
        mode = spec.get("mode", "pass")
        if mode not in MODES:
            raise ValueError("mode must be one of %s" % ", ".join(MODES))
        direction = spec.get("direction", "up")
        if direction not in DIRECTIONS:
            raise ValueError("direction must be one of %s" % ", ".join(DIRECTIONS))
        then = spec.get("then", "reset")
        if then not in ("reset", "pass"):
            raise ValueError("then must be reset or pass")
        self.mode = {
            "mode": mode,
            "bytes": int(spec.get("bytes", 0)),
            "direction": direction,
            "then": then,
            "delay_ms": int(spec.get("delay_ms", 0)),
            "rate": int(spec.get("rate", 0)),
        }
        self.remaining = self.mode["bytes"]  # for cut_after

    async def apply_mode(self, spec):
        self.set_mode(spec)
        log(event="mode", **self.mode)
        if self.mode["mode"] == "reset":
            self.reset_all()
        if self.mode["mode"] == "refuse":
            await self.stop_listening()
        else:
            await self.listen()

    def reset_all(self):
        for client, upstream in list(self.conns):
            hard_close(client)
            if upstream is not None:
                hard_close(upstream)
            self.stats["resets"] += 1
        self.conns.clear()

    async def listen(self):
        if self.server is None:
            self.server = await asyncio.start_server(
                self.handle, self.listen_host, self.listen_port, reuse_address=True)
            self.listen_port = self.server.sockets[0].getsockname()[1]

    async def stop_listening(self):
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def handle(self, client_reader, client_writer):
        self.stats["connections"] += 1
        peer = client_writer.get_extra_info("peername")
        if self.mode["mode"] == "reset":
            self.stats["resets"] += 1
            log(event="reset-on-accept", peer=str(peer))
            hard_close(client_writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError as e:
            log(event="upstream-connect-failed", error=str(e))
            hard_close(client_writer)
            return
        conn = (client_writer, upstream_writer)
        self.conns.add(conn)
        await asyncio.gather(
            self.pump(client_reader, upstream_writer, "up", conn),
            self.pump(upstream_reader, client_writer, "down", conn),
        )
        self.conns.discard(conn)

    async def pump(self, reader, writer, direction, conn):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                mode = self.mode
                if mode["mode"] == "reset" or conn not in self.conns:
                    return  # reset_all has closed both sides
                if mode["mode"] == "blackhole":
                    continue
                if mode["delay_ms"]:
                    await asyncio.sleep(mode["delay_ms"] / 1000)
                if mode["rate"]:
                    await asyncio.sleep(len(data) / mode["rate"])
                if mode["mode"] == "cut_after" and mode["direction"] in (direction, "both"):
                    if len(data) >= self.remaining:
                        writer.write(data[:self.remaining])
                        self.stats["bytes_" + direction] += self.remaining
                        await writer.drain()
                        self.stats["cuts"] += 1
                        log(event="cut", direction=direction, after=mode["bytes"], then=mode["then"])
                        await self.apply_mode({"mode": mode["then"]})
                        self.reset_all()
                        return
                    self.remaining -= len(data)
                writer.write(data)
                self.stats["bytes_" + direction] += len(data)
                await writer.drain()
        except (ConnectionError, OSError):
            for w in conn:
                hard_close(w)
            self.conns.discard(conn)


async def control(proxy, reader, writer):
    """One HTTP/1.1 request per connection: enough for urllib and curl."""
    try:
        request_line = (await reader.readline()).decode("latin-1").split()
        headers = {}
        while True:
            line = (await reader.readline()).decode("latin-1").strip()
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        method, path = request_line[0], request_line[1]
        status, answer = 200, None
        if path == "/healthz":
            answer = {"ok": True}
        elif path == "/mode" and method == "GET":
            answer = proxy.mode
        elif path == "/mode" and method == "POST":
            try:
                await proxy.apply_mode(json.loads(body or b"{}"))
                answer = proxy.mode
            except (ValueError, TypeError) as e:
                status, answer = 400, {"error": str(e)}
        elif path == "/stats" and method == "GET":
            answer = dict(proxy.stats, live=len(proxy.conns), mode=proxy.mode["mode"])
        else:
            status, answer = 404, {"error": "no such path"}
        data = json.dumps(answer).encode()
        writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % (status, b"OK" if status == 200 else b"Error", len(data)) + data)
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, IndexError, ValueError):
        pass
    finally:
        writer.close()


async def run(args):
    proxy = Proxy(args.host, args.port, args.upstream_host, args.upstream_port)
    await proxy.listen()
    control_server = await asyncio.start_server(
        lambda r, w: control(proxy, r, w), args.host, args.control_port, reuse_address=True)
    control_port = control_server.sockets[0].getsockname()[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d %d\n" % (proxy.listen_port, control_port))
        os.replace(tmp, args.port_file)
    log(event="listening", proxy="%s:%d" % (args.host, proxy.listen_port),
        control="%s:%d" % (args.host, control_port), upstream="%s:%d" % proxy.upstream)
    await asyncio.Event().wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="proxy port; 0 picks a free one")
    parser.add_argument("--control-port", type=int, default=0, help="control port; 0 picks a free one")
    parser.add_argument("--port-file", help='write "PROXY_PORT CONTROL_PORT" here once listening')
    parser.add_argument("--upstream-host", default="127.0.0.1")
    parser.add_argument("--upstream-port", type=int, required=True)
    args = parser.parse_args()
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
