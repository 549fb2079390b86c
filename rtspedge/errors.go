package rtspedge

import (
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/rtspmesh/rtspmesh/store"
)

// Errors a Recordings implementation or the origin client returns; the server
// turns them into RTSP status codes (and nothing else does).
var (
	// ErrUnknownOrigin: the path names no configured origin (404 Not Found).
	ErrUnknownOrigin = errors.New("unknown origin")
	// ErrBadPath: the path is malformed or escapes its origin (400 Bad Request).
	ErrBadPath = errors.New("bad path")
	// ErrOriginUnavailable: the origin cannot be reached or failed (503 Service Unavailable).
	ErrOriginUnavailable = errors.New("origin unavailable")
	// ErrMalformedSDP: the origin's session description cannot be used (502 Bad Gateway).
	ErrMalformedSDP = errors.New("malformed SDP from origin")
	// ErrOriginPolicy: the origin asked for what its configuration forbids:
	// a redirect off its own scheme, host and port, or Basic credentials
	// over plain rtsp:// (502 Bad Gateway).
	ErrOriginPolicy = errors.New("origin refused by policy")
	// ErrStreamLimit: the origin sent more than a stream may store (bytes
	// beyond the SDP's duration at the maximum bitrate, or an RTP packet
	// larger than a player can receive). The fill ends there, partial.
	ErrStreamLimit = errors.New("origin stream over its limits")
	// ErrSpeedScalesClock: the origin granted Speed but slowed its RTP
	// clock by as much (gst-rtsp-server 1.22 does), so the media would be
	// stored too fast. Nothing of the session was stored; Reopen asks for
	// no Speed.
	ErrSpeedScalesClock = errors.New("origin scales its RTP clock with Speed")
	// ErrOriginDropped: the origin dropped packets of an on-demand stream
	// it sent faster than real time (a gap in a track's sequence numbers),
	// as a server does whose queue for this client overflowed because the
	// client took the packets slower than the Speed it granted. What
	// arrived before the gap is
	// stored, nothing after it; Reopen asks for half the Speed the
	// dropping session played at (see DroppedError), and its Run resumes
	// after the last packet stored.
	ErrOriginDropped = errors.New("origin dropped packets")
	// ErrOverLimit: a bound on fills or requests was reached (503 Service
	// Unavailable, the bound named in the reason phrase; see LimitError).
	ErrOverLimit = errors.New("over limit")
)

// LimitError names the bound a request ran into. It matches ErrOverLimit.
type LimitError struct {
	Limit  string // a short name, e.g. "fills" (a metric label)
	Reason string // for the player's reason phrase, e.g. "too many fills"
}

func (e *LimitError) Error() string { return "over limit " + e.Limit + ": " + e.Reason }

// Is makes a LimitError match ErrOverLimit.
func (e *LimitError) Is(target error) bool { return target == ErrOverLimit }

// DroppedError says where an on-demand session lost packets. It matches
// ErrOriginDropped.
type DroppedError struct {
	Origin string        // the origin's URL without user info
	Lost   uint64        // packets missing at the first gap
	After  time.Duration // tt of the last packet before the gap
	Speed  float64       // the delivery speed of the session (1: real time)
}

func (e *DroppedError) Error() string {
	return fmt.Sprintf("origin %s: %v: %d after %v at %.3g times real time", e.Origin, ErrOriginDropped, e.Lost, e.After, e.Speed)
}

// Is makes a DroppedError match ErrOriginDropped.
func (e *DroppedError) Is(target error) bool { return target == ErrOriginDropped }

// OriginStatusError is a non-200 answer of an origin to DESCRIBE, SETUP or PLAY.
// 4xx answers pass through to the player; 5xx ones count as ErrOriginUnavailable.
type OriginStatusError struct {
	Method  string
	Code    int
	Message string
}

func (e *OriginStatusError) Error() string {
	return fmt.Sprintf("origin answered %s with %d %s", e.Method, e.Code, e.Message)
}

// Unwrap makes a 5xx answer match ErrOriginUnavailable.
func (e *OriginStatusError) Unwrap() error {
	if e.Code >= 500 {
		return ErrOriginUnavailable
	}
	return nil
}

// statusFor maps an error from Recordings.Open (or the store) to the status
// a player gets.
func statusFor(err error) base.StatusCode {
	var se *OriginStatusError
	switch {
	case errors.Is(err, ErrUnknownOrigin), errors.Is(err, store.ErrNotFound):
		return base.StatusNotFound
	case errors.Is(err, ErrBadPath):
		return base.StatusBadRequest
	case errors.Is(err, ErrNotCached):
		return base.StatusGatewayTimeout
	case errors.Is(err, ErrOriginUnavailable):
		return base.StatusServiceUnavailable
	case errors.Is(err, ErrMalformedSDP), errors.Is(err, ErrOriginPolicy):
		return base.StatusBadGateway
	case errors.Is(err, ErrOverLimit):
		return base.StatusServiceUnavailable
	case errors.As(err, &se) && se.Code >= 400 && se.Code < 500:
		return base.StatusCode(se.Code)
	}
	return base.StatusInternalServerError
}

// refusal is the answer a player gets for err: statusFor's code with a
// reason phrase that says what went wrong where the standard one would not
// ("503 Origin Unreachable", not a bare "503 Service Unavailable"; a bound
// or an origin policy named in parentheses: "503 Service Unavailable (too
// many fills)"). An origin's own 4xx answer passes through with its reason
// phrase.
func refusal(err error) *base.Response {
	res := &base.Response{StatusCode: statusFor(err)}
	var se *OriginStatusError
	var le *LimitError
	switch {
	case errors.As(err, &le):
		res.StatusMessage = base.StatusMessages[res.StatusCode] + " (" + le.Reason + ")"
	case errors.Is(err, ErrOriginPolicy):
		res.StatusMessage = base.StatusMessages[res.StatusCode] + " (origin refused by policy)"
	case errors.Is(err, ErrUnknownOrigin):
		res.StatusMessage = "Unknown Origin"
	case errors.Is(err, ErrNotCached):
		res.StatusMessage = "Not Cached"
	case errors.Is(err, ErrOriginUnavailable):
		res.StatusMessage = "Origin Unreachable"
	case errors.Is(err, ErrMalformedSDP):
		res.StatusMessage = "Bad Origin Description"
	case errors.As(err, &se) && se.Code >= 400 && se.Code < 500 && validReason(se.Message):
		res.StatusMessage = se.Message
	}
	return res
}

// validReason: a reason phrase that can go on a status line as it is.
func validReason(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		if c < ' ' || c > '~' {
			return false
		}
	}
	return true
}

// reasonPhrase is the reason phrase res goes out with.
func reasonPhrase(res *base.Response) string {
	if res.StatusMessage != "" {
		return res.StatusMessage
	}
	return base.StatusMessages[res.StatusCode]
}
