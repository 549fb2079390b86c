#!/bin/sh
# make-sample.sh regenerates sample.ts, the clip the built-in origin embeds
# (origin.SampleClip): 20 s of ffmpeg test sources, H.264 baseline 640x360
# 25 fps with a key frame every second (25 frames, no scene-cut key frames),
# AAC-LC mono 48 kHz, in MPEG-TS. Run it from anywhere; it writes next to itself.
set -eu
cd "$(dirname "$0")"
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=25" \
  -f lavfi -i "sine=frequency=440:beep_factor=4:sample_rate=48000" \
  -t 20 \
  -c:v libx264 -profile:v baseline -preset veryfast -pix_fmt yuv420p \
  -g 25 -keyint_min 25 -sc_threshold 0 -b:v 800k -maxrate 800k -bufsize 800k \
  -c:a aac -ac 1 -ar 48000 -b:a 64k \
  -bitexact -fflags +bitexact -flags:v +bitexact -flags:a +bitexact \
  -mpegts_flags +resend_headers -muxrate 0 \
  -f mpegts sample.ts
ls -l sample.ts
