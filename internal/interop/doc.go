// Package interop is the test kit for running rtspmesh against third-party
// RTSP software: it starts gst-rtsp-server (through testdata/gst-rtsp-server.py)
// as an origin, makes short media clips with ffmpeg, plays streams with ffmpeg
// and with GStreamer's rtspsrc (testdata/gst-play.py), and compares what they
// decoded.
//
// Every player writes ffmpeg's framemd5 format: one line per decoded video
// frame and per decoded audio frame, with the MD5 of its raw bytes. A Play
// keeps those frames by kind, with the wall time each line arrived, so a test
// can check that two plays decoded identical frames (SameFrames), align two
// plays of a live stream by content (AlignFrames), and measure pacing (wall
// time over media time) and end lag (how long the player ran after its last
// frame, until it ended by itself).
//
// It is for tests only: no product code imports it (cmd/rtspmesh's layering
// test checks), and it imports nothing of rtspmesh, so the tests of every
// package can use it. The tools it runs are ffmpeg, /usr/bin/python3 with the
// GStreamer bindings and gst-rtsp-server, all installed by .ci/install-test-deps.
package interop
