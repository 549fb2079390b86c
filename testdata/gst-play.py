#!/usr/bin/python3
"""A GStreamer RTSP player for rtspmesh's interop tests (run with /usr/bin/python3).

    gst-play.py [--protocols tcp|udp] [--seek SECONDS] [--duration SECONDS] URL

Plays URL with rtspsrc, decodes every stream (decodebin), and writes one
line per decoded frame on stdout in ffmpeg's framemd5 format, so that the
tests read both players alike:

    #media_type 0: video
    0,       PTS,       PTS,  DURATION,  SIZE, MD5

(timestamps in the stream's time base, 1/1000000000; MD5 of the raw frame:
I420 video, interleaved S16LE audio). Stream 0 is the first stream decoded.
--seek seeks to SECONDS as soon as the first frame is decoded (rtspsrc
sends PAUSE, then PLAY with the Range) and writes only the frames after it. It exits 0 when the stream ends by itself (EOS: rtspsrc got a
BYE or the end of the range), after --duration seconds of wall time when
given (a live stream), and non-zero on an error. Nothing else goes to stdout.
"""

import argparse
import functools
import hashlib
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

RAW = {
    "video": "video/x-raw,format=I420",
    "audio": "audio/x-raw,format=S16LE,layout=interleaved",
}
CONVERT = {"video": "videoconvert", "audio": "audioconvert"}


# PyGObject resolves a GStreamer type's attributes lazily, on first use, and
# that is not thread-safe: two streaming threads meeting an attribute for the
# first time at once fail ("'Caps' object has no attribute 'get_structure'",
# "type object 'PadProbeType' has no attribute 'BUFFER'"), and a stream goes
# unlinked. The callbacks of streaming threads and of the main loop hold one
# lock; what play and seek use on the main thread is resolved before the
# pipeline plays (they change the pipeline's state: under the lock they could
# wait for a streaming thread that waits for it).
gi_lock = threading.Lock()


def serialized(f):
    @functools.wraps(f)
    def locked(*args):
        with gi_lock:
            return f(*args)

    return locked


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocols", choices=["tcp", "udp"], default="tcp")
    ap.add_argument("--seek", type=float, default=None)
    ap.add_argument("--duration", type=float, default=None)
    ap.add_argument("--latency", type=int, default=200, help="rtspsrc jitter buffer latency, ms")
    ap.add_argument("url")
    args = ap.parse_args()

    Gst.init(None)
    pipeline = Gst.Pipeline.new("player")
    src = Gst.ElementFactory.make("rtspsrc")
    src.set_property("location", args.url)
    src.set_property("protocols", "tcp" if args.protocols == "tcp" else "udp")
    src.set_property("latency", args.latency)
    pipeline.add(src)
    loop = GLib.MainLoop()
    state = {"streams": 0, "code": 0}

    @serialized
    def on_sample(sink, index):
        sample = sink.emit("pull-sample")
        if args.seek is not None and not state.get("seeked"):
            # The first frame says the stream plays: seek now, and keep
            # no frame from before the seek.
            if not state.get("seeking"):
                state["seeking"] = True
                GLib.idle_add(seek)
            return Gst.FlowReturn.OK
        buf = sample.get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        if not ok:
            return Gst.FlowReturn.ERROR
        try:
            digest = hashlib.md5(info.data).hexdigest()
            size = info.size
        finally:
            buf.unmap(info)
        pts = buf.pts if buf.pts != Gst.CLOCK_TIME_NONE else -1
        dur = buf.duration if buf.duration != Gst.CLOCK_TIME_NONE else 0
        out("%d, %10d, %10d, %8d, %8d, %s" % (index, pts, pts, dur, size, digest))
        return Gst.FlowReturn.OK

    @serialized
    def on_decoded_pad(_dbin, pad):
        caps = pad.get_current_caps() or pad.query_caps(None)
        kind = caps.get_structure(0).get_name().split("/")[0]
        if kind not in RAW:
            return
        index = state["streams"]
        state["streams"] += 1
        out("#tb %d: 1/1000000000" % index)
        out("#media_type %d: %s" % (index, kind))
        conv = Gst.ElementFactory.make(CONVERT[kind])
        if kind == "audio":
            # No random dither: the same stream must give the same samples.
            conv.set_property("dithering", 0)
            conv.set_property("noise-shaping", 0)
        sink = Gst.ElementFactory.make("appsink")
        sink.set_property("caps", Gst.Caps.from_string(RAW[kind]))
        sink.set_property("sync", False)
        sink.set_property("emit-signals", True)
        sink.connect("new-sample", on_sample, index)
        for e in (conv, sink):
            pipeline.add(e)
            e.sync_state_with_parent()
        conv.link(sink)
        pad.link(conv.get_static_pad("sink"))

    @serialized
    def on_rtsp_pad(_src, pad):
        dbin = Gst.ElementFactory.make("decodebin")
        dbin.connect("pad-added", on_decoded_pad)
        pipeline.add(dbin)
        dbin.sync_state_with_parent()
        pad.link(dbin.get_static_pad("sink"))

    src.connect("pad-added", on_rtsp_pad)

    @serialized
    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.EOS:
            loop.quit()
        elif msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            sys.stderr.write("gst-play: %s (%s)\n" % (err.message, dbg))
            state["code"] = 1
            loop.quit()
        elif msg.type == Gst.MessageType.WARNING:
            err, dbg = msg.parse_warning()
            sys.stderr.write("gst-play: warning: %s (%s)\n" % (err.message, dbg))

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)

    def play():
        if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            sys.stderr.write("gst-play: cannot play %s\n" % args.url)
            state["code"] = 1
            loop.quit()
        return False

    def seek():
        # rtspsrc seeks a playing session with PAUSE and a PLAY that carries
        # the Range; the flush drops what came before.
        if not pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH, int(args.seek * Gst.SECOND)):
            sys.stderr.write("gst-play: seek to %s s refused\n" % args.seek)
            state["code"] = 1
            loop.quit()
        state["seeked"] = True
        return False

    # Resolved now, on this thread (see gi_lock).
    _ = (pipeline.set_state, pipeline.seek_simple, Gst.State.PLAYING, Gst.StateChangeReturn.FAILURE,
         Gst.Format.TIME, Gst.SeekFlags.FLUSH, Gst.SECOND)
    GLib.idle_add(play)
    if args.duration is not None:
        GLib.timeout_add(int(args.duration * 1000), loop.quit)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    if state["streams"] == 0 and state["code"] == 0:
        sys.stderr.write("gst-play: no stream decoded\n")
        state["code"] = 1
    sys.exit(state["code"])


if __name__ == "__main__":
    main()
