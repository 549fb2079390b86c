// Command benchtable turns the output of `go test -bench` (on stdin) into
// one Markdown table: a row per figure each benchmark reported, in the
// order they ran, with the project's target for that figure (README,
// Performance) and whether this run met it. `make bench` pipes its run
// through it, so every figure of one run — the writev baselines and the
// store's own rates included — is in one table.
//
// A benchmark that reports figures of its own (b.ReportMetric) is shown
// by those alone: with -benchtime 1x its ns/op is the length of its whole
// run. One that reports none is shown by ns/op and allocs/op. A failed
// benchmark is a row of its own, and benchtable exits 1 when any failed or
// no benchmark line was read. Given two runs' outputs (go run
// ./internal/benchtable first.out second.out), each figure of the first is
// followed by the second's in brackets.
package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"strconv"
	"strings"
)

// target is what a figure must be: at most or at least value, plus the
// figure named by plus in the same benchmark's line when set (a target
// that depends on what the same run measured, such as a round trip).
type target struct {
	bench  string // a path.Match pattern over the name without -GOMAXPROCS
	metric string
	atMost bool
	value  float64
	plus   string
}

// targets are the README's (issues 10–16), by benchmark and figure.
var targets = []target{
	{"BenchmarkAppend", "MB/s", false, 200, ""},
	{"BenchmarkReadSequential", "MB/s", false, 1000, ""},
	{"BenchmarkSeek", "ms/seek", true, 1, ""},
	{"BenchmarkTailWakeup", "µs/wakeup", true, 100, ""},
	{"BenchmarkServe500Players", "server-µs/packet", true, 1.5, ""},
	{"BenchmarkServe500Players", "gaps", true, 0, ""},
	{"BenchmarkServe500Spread", "server-MiB", true, 100, ""},
	{"BenchmarkPlayToFirstPacket", "ms/first-packet", true, 5, ""},
	{"BenchmarkMissFirstPacket", "extra-ms", true, 10, ""},
	{"BenchmarkLiveFanOut500", "us/pkt", true, 1.5, ""},
	{"BenchmarkLiveFanOut500", "gaps", true, 0, ""},
	{"BenchmarkLivePlayToFirstPacket", "ms/first-median", true, 5, ""},
	{"BenchmarkLivePlayToFirstPacket", "keyframe-starts", false, 1, ""},
	{"BenchmarkPeerFill", "fill-MB/s", false, 200, ""},
	{"BenchmarkPeerFill", "fill/store", false, 0.8, ""},
	{"BenchmarkMeshFirstSegment", "ms/first-segment", true, 50, ""},
	{"BenchmarkMeshFirstSegment", "lookup-%", false, 100, ""},
	{"BenchmarkMissFiveSilentProviders", "first-packet-s", true, 0, "target-s"},
	{"BenchmarkColdStreamWithin10ms", "origin-sessions/round", true, 1, ""},
	{"BenchmarkFillerHop/*", "ms/filler-extra", true, 5, "ms/mesh-rtt"},
	{"BenchmarkLiveRelayHop", "ms/hop-median", true, 50, ""},
	{"BenchmarkRevalidationOnHit", "revalidate-extra-ms", true, 5, "origin-rtt-ms"},
	{"BenchmarkNodeIdle", "node-RSS-MiB", true, 40, ""},
	{"BenchmarkNodeVOD500", "node-RSS-MiB", true, 100, ""},
	{"BenchmarkNodeVOD500", "node-µs/pkt", true, 1.5, ""},
	{"BenchmarkNodeVOD500", "gaps", true, 0, ""},
	{"BenchmarkNodeLive500", "node-RSS-MiB", true, 100, ""},
	{"BenchmarkNodeLive500", "node-µs/pkt", true, 1.5, ""},
	{"BenchmarkNodeLive500", "gaps", true, 0, ""},
	{"BenchmarkNodeLive1000", "gaps", true, 0, ""},
	{"BenchmarkNodeLive1000", "players-at-pace", false, 1000, ""},
	{"BenchmarkPrefetch90s/speed=8", "x-realtime", false, 8, ""},
	{"BenchmarkPrefetch90s/gst/range_parallelism=5", "x-realtime", false, 4, ""},
}

// figure is one value a benchmark reported.
type figure struct {
	metric string
	value  float64
}

// result is one benchmark line, or a failed benchmark (failed set, no
// figures).
type result struct {
	pkg, name string
	figures   []figure
	failed    bool
}

// standard are the figures the testing package reports by itself.
var standard = map[string]bool{"ns/op": true, "B/op": true, "allocs/op": true, "MB/s": true}

// Usage: benchtable < run.out, or benchtable run.out [other.out]: with a
// second run, each figure shows the second run's value in brackets (the
// spread between two runs on a noisy machine); targets are judged on the
// first.
func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 2 {
		return fmt.Errorf("usage: benchtable [run.out [other.out]] (or the run on stdin)")
	}
	var runs [][]result
	for _, name := range args {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		rs, err := parse(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		runs = append(runs, rs)
	}
	if len(args) == 0 {
		rs, err := parse(os.Stdin)
		if err != nil {
			return err
		}
		runs = append(runs, rs)
	}
	var other []result
	if len(runs) == 2 {
		other = runs[1]
	}
	return write(os.Stdout, runs[0], other...)
}

// parse reads go test -bench output: "pkg:" lines name the package of the
// benchmark lines that follow, "--- FAIL: Benchmark…" marks a failure.
func parse(r io.Reader) ([]result, error) {
	var (
		results []result
		pkg     string
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimPrefix(line, "pkg: ")
		case strings.HasPrefix(line, "--- FAIL: Benchmark"):
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "--- FAIL: "), " ")
			results = append(results, result{pkg: pkg, name: name, failed: true})
		case strings.HasPrefix(line, "Benchmark"):
			res, ok, err := parseLine(line)
			if err != nil {
				return nil, err
			}
			if ok {
				res.pkg = pkg
				results = append(results, res)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the benchmark output: %w", err)
	}
	return results, nil
}

// parseLine reads "BenchmarkX-2  N  v unit  v unit…". A line that is only
// a name (a parent of sub-benchmarks, or a benchmark's own log line
// starting with its name) is not a result: ok is false.
func parseLine(line string) (res result, ok bool, err error) {
	f := strings.Fields(line)
	if len(f) < 4 || len(f)%2 != 0 {
		return res, false, nil
	}
	if _, err := strconv.Atoi(f[1]); err != nil {
		return res, false, nil
	}
	res.name = trimProcs(f[0])
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return res, false, fmt.Errorf("%s: figure %q: %w", res.name, f[i], err)
		}
		res.figures = append(res.figures, figure{metric: f[i+1], value: v})
	}
	return res, true, nil
}

// trimProcs drops the -GOMAXPROCS suffix go test adds to a name.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

// shown are the figures of r the table lists: its own when it reported
// any, else ns/op and allocs/op (MB/s too, when set by b.SetBytes).
func (r result) shown() []figure {
	var own, std []figure
	for _, f := range r.figures {
		switch {
		case !standard[f.metric]:
			own = append(own, f)
		case f.metric != "B/op":
			std = append(std, f)
		}
	}
	if len(own) > 0 {
		for _, f := range std {
			if f.metric == "MB/s" {
				own = append(own, f)
			}
		}
		return own
	}
	return std
}

// value is the figure named metric in r.
func (r result) value(metric string) (float64, bool) {
	for _, f := range r.figures {
		if f.metric == metric {
			return f.value, true
		}
	}
	return 0, false
}

// verdict is the target column and whether it was met, for figure f of r;
// both empty when the figure has no target.
func verdict(r result, f figure) (want, met string) {
	for _, t := range targets {
		if ok, _ := path.Match(t.bench, r.name); !ok || t.metric != f.metric {
			continue
		}
		limit, what := t.value, format(t.value)
		if t.plus != "" {
			extra, ok := r.value(t.plus)
			if !ok {
				return "+ " + t.plus, "no " + t.plus
			}
			limit += extra
			what = fmt.Sprintf("%s (%s + %s)", round(limit), t.plus, format(t.value))
		}
		pass := f.value >= limit
		want = "≥ " + what
		if t.atMost {
			pass, want = f.value <= limit, "≤ "+what
		}
		if pass {
			return want, "met"
		}
		return want, "**not met**"
	}
	return "", ""
}

// format prints a target as it was written.
func format(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// round prints a measured figure with the digits worth reading: none for
// a whole number or from 1000 up, one from 100, two from 1, three
// significant ones below.
func round(v float64) string {
	switch a := max(v, -v); {
	case a == math.Trunc(a) || a >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// write prints the table, then a line counting targets met and missed.
// Figures of other (a second run) go in brackets after the same figure.
func write(w io.Writer, results []result, other ...result) error {
	second := map[string]float64{}
	for _, r := range other {
		for _, f := range r.figures {
			second[r.pkg+" "+r.name+" "+f.metric] = f.value
		}
	}
	if len(results) == 0 {
		return fmt.Errorf("no benchmark results in the input")
	}
	var met, missed, failed []string
	fmt.Fprintln(w, "| package | benchmark | figure | measured | target | |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
	for _, r := range results {
		pkg := path.Base(r.pkg)
		if r.failed {
			failed = append(failed, r.name)
			fmt.Fprintf(w, "| %s | %s | | **failed** | | |\n", pkg, r.name)
			continue
		}
		for _, f := range r.shown() {
			want, ok := verdict(r, f)
			switch ok {
			case "met":
				met = append(met, r.name+" "+f.metric)
			case "":
			default:
				missed = append(missed, r.name+" "+f.metric)
			}
			measured := round(f.value)
			if v, ok := second[r.pkg+" "+r.name+" "+f.metric]; ok {
				measured += " (" + round(v) + ")"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", pkg, r.name, f.metric, measured, want, ok)
		}
	}
	fmt.Fprintf(w, "\ntargets: %d met, %d not met", len(met), len(missed))
	if len(missed) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(missed, "; "))
	}
	fmt.Fprintln(w)
	if len(failed) > 0 {
		return fmt.Errorf("%d benchmarks failed: %s", len(failed), strings.Join(failed, ", "))
	}
	return nil
}
