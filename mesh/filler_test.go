package mesh

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
)

// TestClosestMemberRule: the rule is a pure function of the key and the
// member set (order does not matter), leaving out skipped members picks the
// next closest, and keys spread over the members.
func TestClosestMemberRule(t *testing.T) {
	t.Parallel()
	ids := make([]string, 8)
	for i := range ids {
		ids[i] = fmt.Sprintf("member-%d", i) // not peer ids: ranked by the string's hash
	}
	chosen := map[string]int{}
	for k := range 200 {
		key := fmt.Sprintf("rtsp://origin.test/cam%d", k)
		first := ClosestMember(key, ids, nil)
		rev := slices.Clone(ids)
		slices.Reverse(rev)
		if got := ClosestMember(key, rev, nil); got != first {
			t.Fatalf("%s: %s in one order, %s in another", key, first, got)
		}
		second := ClosestMember(key, ids, func(id string) bool { return id == first })
		if second == first || second == "" {
			t.Fatalf("%s: next closest after %s is %q", key, first, second)
		}
		if got := ClosestMember(key, slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == first }), nil); got != second {
			t.Fatalf("%s: skipping %s gives %s, removing it gives %s", key, first, second, got)
		}
		chosen[first]++
	}
	if len(chosen) < 6 {
		t.Fatalf("200 keys chose only %d of 8 members: %v", len(chosen), chosen)
	}
	if got := ClosestMember("k", []string{"a"}, func(string) bool { return true }); got != "" {
		t.Fatalf("all skipped: %q, want none", got)
	}
}

// TestFillerProtocol: an asker's request starts the filler's fill (ready
// once StartFill returns, told whether anybody watches at the asker, and
// told anew when the asker says so) and holds it until the asker closes,
// or sends a bad flags byte; a key the filler is not configured for is
// refused; a filler whose fill fails says so; both nodes agree on the
// filler of a key.
func TestFillerProtocol(t *testing.T) {
	t.Parallel()
	var held atomic.Int64
	var unwatchedAsks atomic.Int64
	released := make(chan struct{}, 1)
	told := make(chan bool, 4) // watch's words
	filler := startNode(t, Config{
		Configured: func(key string) bool { return key != "rtsp://elsewhere.test/x" },
		StartFill: func(ctx context.Context, key string, unwatched bool) (func(), func(bool), error) {
			if key == "rtsp://origin.test/fails" {
				return nil, nil, errors.New("origin down")
			}
			if unwatched {
				unwatchedAsks.Add(1)
			}
			held.Add(1)
			return func() { held.Add(-1); released <- struct{}{} }, func(u bool) { told <- u }, nil
		},
	}, nil)
	asker := startNode(t, Config{}, nil)
	if err := connect(t.Context(), asker, filler); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "members", func() bool {
		return len(asker.Members()) == 2 && len(filler.Members()) == 2
	})
	for k := range 20 {
		key := fmt.Sprintf("rtsp://origin.test/%d", k)
		a, f := asker.Filler(key, nil), filler.Filler(key, nil)
		if a.ID != f.ID || a.Self == f.Self || a.Known != 2 {
			t.Fatalf("%s: asker sees %+v, filler sees %+v", key, a, f)
		}
	}

	for _, unwatched := range []bool{false, true} {
		h, err := asker.AskFiller(t.Context(), filler.ID(), "rtsp://origin.test/a", time.Second, unwatched)
		if err != nil {
			t.Fatal(err)
		}
		if held.Load() != 1 || (unwatchedAsks.Load() == 1) != unwatched {
			t.Fatalf("asked with unwatched %v: holds %d after ready, %d unwatched asks; want 1 hold", unwatched, held.Load(), unwatchedAsks.Load())
		}
		// The same word again is no news; the other is, and back (the
		// filler applies the last word it read: one at a time here).
		if err := h.SetUnwatched(unwatched); err != nil {
			t.Fatal(err)
		}
		for _, want := range []bool{!unwatched, unwatched} {
			if err := h.SetUnwatched(want); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-told:
				if got != want {
					t.Fatalf("told unwatched %v, want %v", got, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("the filler was not told unwatched %v within 10 s", want)
			}
		}
		if unwatched {
			h.Close()
		} else if _, err := h.s.Write([]byte{0x80}); err != nil { // a flags bit no version knows
			t.Fatal(err)
		}
		select {
		case <-released:
		case <-time.After(10 * time.Second):
			t.Fatal("the hold was not released 10 s after the asker closed it or sent a bad flags byte")
		}
	}
	select {
	case u := <-told:
		t.Fatalf("told unwatched %v more", u)
	default:
	}
	if _, err := asker.AskFiller(t.Context(), filler.ID(), "rtsp://elsewhere.test/x", time.Second, false); !errors.Is(err, ErrNotConfigured) {
		t.Fatalf("unconfigured origin: %v, want ErrNotConfigured", err)
	}
	if _, err := asker.AskFiller(t.Context(), filler.ID(), "rtsp://origin.test/fails", time.Second, false); !errors.Is(err, ErrFillerFailed) {
		t.Fatalf("failing fill: %v, want ErrFillerFailed", err)
	}
	if _, err := filler.AskFiller(t.Context(), asker.ID(), "rtsp://origin.test/a", time.Second, false); !errors.Is(err, ErrFillerUnreachable) {
		t.Fatalf("a node without StartFill: %v, want ErrFillerUnreachable (busy)", err)
	}
}
