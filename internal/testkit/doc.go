// Package testkit holds the helpers every package's tests share: running a
// component until the test ends (Run), polling a condition under a deadline
// (Eventually), the test logger (Logger), running the test binary again as
// a child process until the test ends (StartChild), and a buffer safe for
// concurrent writers (Buffer). The ffmpeg framemd5 helpers
// live with the other player helpers in internal/interop.
//
// It is for tests only (cmd/rtspmesh's layering test checks) and imports
// nothing of rtspmesh, so the tests of every package, store included, can
// use it. It owns no product behaviour.
package testkit
