package store

import (
	"fmt"
	"log/slog"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// badgerOptions are chosen by measurement on the 2-core development machine
// (see README "Performance" and BenchmarkAppend/BenchmarkReadSequential):
//
//   - One value per segment (64–256 KiB), never one key per packet: raw Badger
//     wrote ~96 MB/s with a key per 1.3 KB packet and ~260 MB/s with 64 KiB
//     values, and read ~3 GB/s.
//   - ValueThreshold 1 KiB: segment bytes go to the value log (written
//     sequentially; read from the file: chunk.go, resident_linux.go),
//     while headers (~1 KB) and segment infos (77 B) stay in the LSM tree,
//     which therefore remains tiny and cheap to compact and to iterate at
//     Open. Measured with this package's benchmarks
//     (256 KiB segments, two runs each on the shared machine): 1 KiB threshold
//     158–230 MB/s append, 1.8–2.7 GB/s read; Badger's default 1 MiB (segments
//     inline in the LSM) 55–170 MB/s append, 1.0–1.8 GB/s read.
//   - Segment commits are pipelined (Txn.CommitWith, see Writer.commit): with
//     a synchronous Update per seal appending spent ~70% of its time waiting
//     for Badger and reached 87–145 MB/s.
//   - DetectConflicts off: each recording has one writer and keys never
//     overlap between writers, so conflict tracking is pure overhead.
//   - ValueLogFileSize 64 MiB: value-log GC rewrites whole files (and writes
//     wait meanwhile, see runGC), so smaller files give back space after
//     evictions sooner and in shorter pauses; rotation every 64 MiB is cheap.
//     MemTableSize 4 MiB (Badger's default is 64): the memtable holds keys,
//     headers and segment infos only (about 1 KB per segment of a VOD, 100 B
//     per live segment: an hour of a live stream), and a smaller one bounds
//     what a flush writes on its own. Both shrink with a small
//     Options.MinFree so that Badger's own reserve fits in it (space.go:
//     badgerFileSizes); the default MinFree gives these sizes.
//   - Memory (issue 15): Badger allocates each memtable's arena whole on
//     the Go heap (the memtable size plus a batch, ~20 MiB for 16 MiB), and
//     every arena raises the heap size at which the garbage collector runs,
//     so the arenas count about twice against a node's RSS. NumMemtables 2
//     (Badger's default 5): one being written, one being flushed; a flush of
//     a few MiB of keys takes milliseconds. Measured with 500 live players
//     (node BenchmarkNodeLive500): memtable arenas were 42 MiB of a 166 MiB
//     heap with 16 MiB memtables in both of a node's stores.
//   - Space comes back only because deletions drop keys by prefix (purgeKeys,
//     dropBlocks): Badger learns that a value is garbage only when compaction
//     drops its key, and this LSM is too small to compact on its own
//     (measured: per-key deletes left a 1 MiB-file value log at 62 MiB for
//     10 MiB of live data; DropPrefix brought it to 12 MiB).
//   - Small block cache (16 MiB; Badger's default is 256): values are not
//     read through it (the store keeps its own cache of decoded segments,
//     Options.CacheBytes) and the LSM holds only small keys, so it holds at
//     most the LSM's few MiB. Without it (issue 15) seeks allocated more and
//     their p99 was no better on the shared machine; it stays.
//   - NumCompactors 2: the machine has 2 cores; the LSM is small.
//   - SyncWrites off: a committed seal reaches the kernel before Commit
//     returns, which survives a killed process (the crash test kills with
//     SIGKILL); a power loss may lose the last seconds, which a cache can
//     refill. Badger still msyncs each value-log file when it rotates it;
//     the store starts the writeback of stored segments every 4 MiB
//     (writeback_linux.go) so that the msync finds little left to write,
//     and has the pages ahead of the writes filled in off Badger's
//     goroutine.
//   - Compression none: the LSM holds headers and infos only; media payloads
//     do not compress.
func badgerOptions(dir string, o Options) badger.Options {
	vlog, mem := badgerFileSizes(o.MinFree)
	bo := badger.DefaultOptions(dir).
		WithValueThreshold(valueThreshold).
		WithDetectConflicts(false).
		WithValueLogFileSize(vlog).
		WithMemTableSize(mem).
		WithBlockCacheSize(16 << 20).
		WithNumMemtables(2).
		WithNumCompactors(2).
		WithSyncWrites(false).
		WithCompression(options.None).
		WithMetricsEnabled(false).
		WithLogger(badgerLogger{o.Logger.With("sub", "badger")})
	if o.InMemory {
		// Everything lives in memtables, and Badger then requires every value
		// to be under ValueThreshold (at most 1 MiB): segments are limited to
		// memSegmentLimit. Memtables stay modest so that many in-memory stores
		// (tests, a node's relay store) do not reserve much memory each; 8 MiB
		// is the smallest power of two whose batch (15 %) holds a 1 MiB value.
		bo = bo.WithDir("").WithValueDir("").WithInMemory(true).
			WithMemTableSize(8 << 20).WithValueThreshold(1 << 20)
	}
	if o.tune != nil {
		o.tune(&bo)
	}
	return bo
}

// valueThreshold: values this long or longer go to the value log (on disk).
const valueThreshold = 1 << 10

// memSegmentLimit bounds an encoded segment in an in-memory store (Badger's
// largest in-memory value is 1 MiB).
const memSegmentLimit = 1<<20 - 1024

// badgerLogger routes Badger's logging into slog; Badger's info and debug
// chatter is dropped to debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.l.Debug(fmt.Sprintf(f, a...)) }
