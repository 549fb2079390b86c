#!/usr/bin/python3
"""A gst-rtsp-server for rtspmesh's interop tests (run with /usr/bin/python3).

    gst-rtsp-server.py [--vod PATH=PIPELINE]... [--live PATH=PIPELINE]... [--max-sessions N]

Each --vod mounts a gst-launch pipeline (ending in payloaders named pay0,
pay1, ...) at /PATH as an on-demand stream: every client gets its own
pipeline, so every play starts at 0 and seeks on its own. Each --live mounts
one shared pipeline that all clients join, never seeked (a camera).
--max-sessions bounds the sessions the server's pool holds at once: past
it a SETUP is answered 503 Service Unavailable (and not reported below).
The server listens on 127.0.0.1
on a port the system picks; when it is ready it prints one line

    READY <port>

on stdout, then one line per RTSP request it receives:

    REQ <METHOD> <path>

(path without the leading slash and without the control suffix of SETUP),
flushed at once, so a test can count what the origin was asked. It exits when
its standard input closes, so a test that dies takes the server with it.
"""

import argparse
import os
import sys
import urllib.parse

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def mount_path(arg):
    path, sep, pipeline = arg.partition("=")
    if not sep or not path or not pipeline:
        raise argparse.ArgumentTypeError("want PATH=PIPELINE, got %r" % arg)
    return "/" + path.strip("/"), pipeline


def request_path(ctx, mounts):
    """The mount a request is about: the longest mount that prefixes its URL path."""
    uri = ctx.uri
    path = uri.abspath if uri is not None else ""
    if not path and ctx.request is not None:
        _, _, url, _ = ctx.request.parse_request()
        path = urllib.parse.urlparse(url).path
    best = ""
    for m in mounts:
        if (path == m or path.startswith(m + "/")) and len(m) > len(best):
            best = m
    return (best or path).lstrip("/")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vod", action="append", type=mount_path, default=[], metavar="PATH=PIPELINE")
    ap.add_argument("--live", action="append", type=mount_path, default=[], metavar="PATH=PIPELINE")
    ap.add_argument("--max-sessions", type=int, default=0, help="sessions the server holds at once (0: no limit); "
                    "past it a SETUP is answered 503 Service Unavailable")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service("0")
    mounts = server.get_mount_points()
    names = []
    for (path, pipeline), shared in [(m, False) for m in args.vod] + [(m, True) for m in args.live]:
        f = GstRtspServer.RTSPMediaFactory()
        f.set_launch("( " + pipeline + " )")
        f.set_shared(shared)
        if shared:
            # A live mount cannot be seeked, as a camera cannot. The server
            # seeks a media to the Range of every PLAY that has one (ffmpeg
            # sends npt=0.000-) when its pipeline says it can seek;
            # videotestsrc and audiotestsrc can, so such a seek would restart
            # the shared pipeline at running time 0 under every client (its
            # timestamps jump back, its first frames repeat). A media that
            # publishes its clock (RFC 7273: a=ts-refclk, a=mediaclk) is
            # never seeked.
            f.set_publish_clock_mode(GstRtspServer.RTSPPublishClockMode.CLOCK_AND_OFFSET)
        f.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
        mounts.add_factory(path, f)
        names.append(path)

    methods = {
        "options-request": "OPTIONS",
        "describe-request": "DESCRIBE",
        "setup-request": "SETUP",
        "play-request": "PLAY",
        "pause-request": "PAUSE",
        "teardown-request": "TEARDOWN",
        "get-parameter-request": "GET_PARAMETER",
    }

    def on_client(_server, client):
        for signal, method in methods.items():
            client.connect(signal, lambda _c, ctx, m=method: say("REQ %s %s" % (m, request_path(ctx, names))))

    server.connect("client-connected", on_client)
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        sys.exit("gst-rtsp-server: cannot listen on 127.0.0.1")

    # Old sessions are dropped every few seconds, as a long-running server does.
    pool = server.get_session_pool()
    pool.set_max_sessions(args.max_sessions)
    GLib.timeout_add_seconds(2, lambda: pool.cleanup() >= 0)

    def on_stdin(fd, _cond):
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.quit()
            return False
        return True

    GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_IN | GLib.IO_HUP | GLib.IO_ERR, on_stdin)
    say("READY %d" % server.get_bound_port())
    loop.run()


if __name__ == "__main__":
    main()
