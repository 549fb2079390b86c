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
sends PAUSE, then PLAY with the Range) and writes only the frames of the
seek: those that reach a sink after the seek's flush, decoded from RTP
packets at or after the sequence number the PLAY answer's RTP-Info gave
(below). It exits 0 when the stream ends by itself (EOS: rtspsrc got a
BYE or the end of the range), after --duration seconds of wall time when
given (a live stream), and non-zero on an error. Nothing else goes to stdout.

RTP-Info after a seek: RFC 2326 (12.33) gives the sequence number of the
first packet of the PLAY so that a client can tell the packets sent before
the seek from those after it. rtspsrc means to (its jitter buffer drops
packets before the seqnum-base of its caps), but over UDP it flushes before
it sends PAUSE and reads the packets that reached its socket meanwhile
right after the flush, before the PLAY answer updates the caps: with the
old seqnum-base they pass, and a few frames from before the seek are
decoded (against gst-rtsp-server as against any server; more often on a
loaded machine). This player drops them, as the RFC means a client to.
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
    # What the seek's filters dropped, said on stderr at the end: a seek
    # that lost its first frames shows where.
    dropped = {"samples before the flush": 0, "packets before the new caps": 0, "packets before the RTP-Info seq": 0}
    firsts = []

    @serialized
    def on_sample(sink, index, stream):
        sample = sink.emit("pull-sample")
        if args.seek is not None and not stream["sought"]:
            # The first frame says the stream plays: seek now, and keep no
            # frame of a stream before the seek's flush reached its sink
            # (on_sink_event), in order with its frames.
            if not state.get("seeking"):
                state["seeking"] = True
                GLib.idle_add(seek)
            else:
                dropped["samples before the flush"] += 1
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
        if args.seek is not None and not stream.get("first"):
            stream["first"] = True
            seg = sample.get_segment()
            firsts.append("stream %d's first frame %d, segment start %d" % (index, pts, seg.start))
        dur = buf.duration if buf.duration != Gst.CLOCK_TIME_NONE else 0
        out("%d, %10d, %10d, %8d, %8d, %s" % (index, pts, pts, dur, size, digest))
        return Gst.FlowReturn.OK

    @serialized
    def on_sink_event(_pad, info, stream):
        if info.get_event().type == Gst.EventType.FLUSH_STOP and state.get("seeking"):
            stream["sought"] = True
        return Gst.PadProbeReturn.OK

    @serialized
    def on_decoded_pad(_dbin, pad, packets):
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
        # A stream whose sink is made after the seek's flush passed its
        # rtspsrc pad gets only what came after the flush.
        stream = {"sought": packets["flushed"]}
        sink.connect("new-sample", on_sample, index, stream)
        sink.get_static_pad("sink").add_probe(Gst.PadProbeType.EVENT_FLUSH, on_sink_event, stream)
        for e in (conv, sink):
            pipeline.add(e)
            e.sync_state_with_parent()
        conv.link(sink)
        pad.link(conv.get_static_pad("sink"))

    @serialized
    def on_rtp(_pad, info, packets):
        # The RTP packets of one stream, out of rtspsrc's jitter buffer:
        # after the seek's flush, drop those before the PLAY answer's
        # RTP-Info seq (the module's doc). rtspsrc puts it in the caps
        # (seqnum-base) that precede the first packet of the PLAY; until
        # they come, a packet cannot be told from one sent before the seek.
        if info.type & Gst.PadProbeType.BUFFER:
            if not packets["flushed"]:
                return Gst.PadProbeReturn.OK
            if packets["base"] is None:
                dropped["packets before the new caps"] += 1
                return Gst.PadProbeReturn.DROP
            hdr = info.get_buffer().extract_dup(0, 4)
            seq = (hdr[2] << 8) | hdr[3]
            if (seq - packets["base"]) & 0xFFFF >= 0x8000:
                dropped["packets before the RTP-Info seq"] += 1
                return Gst.PadProbeReturn.DROP
            return Gst.PadProbeReturn.OK
        event = info.get_event()
        if event.type == Gst.EventType.FLUSH_STOP and state.get("seeking"):
            packets["flushed"], packets["base"] = True, None
        elif event.type == Gst.EventType.CAPS:
            ok, base = event.parse_caps().get_structure(0).get_uint("seqnum-base")
            if not ok:
                base = None
            if not packets["flushed"]:
                packets["before"] = base
            elif base is not None and base != packets.get("before"):
                packets["base"] = base
        return Gst.PadProbeReturn.OK

    @serialized
    def on_rtsp_pad(_src, pad):
        packets = {"flushed": False, "base": None, "before": None}
        caps = pad.get_current_caps()
        if caps is not None:
            ok, base = caps.get_structure(0).get_uint("seqnum-base")
            packets["before"] = base if ok else None
        if args.seek is not None:
            pad.add_probe(Gst.PadProbeType.BUFFER | Gst.PadProbeType.EVENT_DOWNSTREAM | Gst.PadProbeType.EVENT_FLUSH,
                          on_rtp, packets)
        dbin = Gst.ElementFactory.make("decodebin")
        dbin.connect("pad-added", on_decoded_pad, packets)
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
        return False

    # Resolved now, on this thread (see gi_lock).
    _ = (pipeline.set_state, pipeline.seek_simple, Gst.State.PLAYING, Gst.StateChangeReturn.FAILURE,
         Gst.Format.TIME, Gst.SeekFlags.FLUSH, Gst.SECOND)
    GLib.idle_add(play)
    if args.duration is not None:
        GLib.timeout_add(int(args.duration * 1000), loop.quit)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    if args.seek is not None:
        sys.stderr.write("gst-play: seek: dropped %s; %s\n" % (
            ", ".join("%d %s" % (n, what) for what, n in dropped.items()), "; ".join(firsts)))
    if state["streams"] == 0 and state["code"] == 0:
        sys.stderr.write("gst-play: no stream decoded\n")
        state["code"] = 1
    sys.exit(state["code"])


if __name__ == "__main__":
    main()
