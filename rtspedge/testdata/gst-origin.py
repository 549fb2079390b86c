#!/usr/bin/python3
"""A minimal gst-rtsp-server origin for rtspedge's tests.

    gst-origin.py VOD_FILE

serves VOD_FILE (MP4 with H.264) at /vod and a live test pattern at /live
on 127.0.0.1, a free port. It prints "PORT <n>" on stdout once it listens
and runs until stdin closes (the test's end) or it is killed.
"""
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    Gst.init(None)
    vod = sys.argv[1]
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service("0")
    mounts = server.get_mount_points()

    f = GstRtspServer.RTSPMediaFactory()
    f.set_launch(
        "( filesrc location=%s ! qtdemux name=d d.video_0 ! queue ! h264parse ! "
        "rtph264pay name=pay0 pt=96 config-interval=-1 )" % vod)
    f.set_shared(False)
    mounts.add_factory("/vod", f)

    live = GstRtspServer.RTSPMediaFactory()
    live.set_launch(
        "( videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=25/1 ! "
        "x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast ! "
        "rtph264pay name=pay0 pt=96 config-interval=-1 )")
    live.set_shared(True)
    mounts.add_factory("/live", live)

    loop = GLib.MainLoop()
    server.attach(None)
    print("PORT %d" % server.get_bound_port(), flush=True)

    def watch_stdin():
        sys.stdin.read()
        GLib.idle_add(loop.quit)

    threading.Thread(target=watch_stdin, daemon=True).start()
    loop.run()


if __name__ == "__main__":
    main()
