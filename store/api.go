package store

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"
)

// Errors returned by the store; test with errors.Is.
var (
	ErrNotFound     = errors.New("store: recording not found")
	ErrExists       = errors.New("store: recording exists")
	ErrBusy         = errors.New("store: recording busy")
	ErrCorrupt      = errors.New("store: corrupt data")
	ErrHashMismatch = errors.New("store: segment hash mismatch")
	ErrBehindWindow = errors.New("store: reader fell behind the live window")
	ErrClosed       = errors.New("store: closed")
)

// Options configure a Store. Zero values take the defaults stated per field.
type Options struct {
	InMemory     bool             // Badger in memory (tests); dir ignored
	MaxBytes     int64            // quota over all recordings; 0 = unlimited
	SegmentBytes int              // seal the open segment at this size (default 256 KiB)
	SegmentSpan  time.Duration    // ...or at this much media time (default 1s)
	LiveWindow   time.Duration    // rolling window kept for Live recordings (default 2m)
	OnEvict      func(key string) // called after a recording was evicted by quota or Delete
	Logger       *slog.Logger
}

// Store holds recordings in one Badger database.
type Store struct{}

// Open opens (or creates) the store in dir.
func Open(dir string, opts Options) (*Store, error) { return &Store{}, nil }

// Close stops background work and closes the database.
func (s *Store) Close() error { return nil }

// Writer appends to one recording.
type Writer struct{}

// Create starts a new recording.
func (s *Store) Create(m Manifest) (*Writer, error) { return nil, ErrClosed }

// Resume reopens a partial recording.
func (s *Store) Resume(key string) (*Writer, error) { return nil, ErrClosed }

// Append adds one packet.
func (w *Writer) Append(p Packet) error { return ErrClosed }

// AppendSegment adds a sealed segment from a peer.
func (w *Writer) AppendSegment(data []byte, h Hash) error { return ErrClosed }

// Last returns the last appended packet's tt and pn.
func (w *Writer) Last() (tt time.Duration, pn uint64, ok bool) { return 0, 0, false }

// Update changes manifest header fields persistently.
func (w *Writer) Update(fn func(m *Manifest)) error { return ErrClosed }

// Manifest returns a copy of the writer's manifest.
func (w *Writer) Manifest() Manifest { return Manifest{} }

// Finish seals the open segment and sets the final state.
func (w *Writer) Finish(st State) error { return ErrClosed }

// Manifest returns the manifest of key.
func (s *Store) Manifest(key string) (Manifest, error) { return Manifest{}, ErrNotFound }

// Reader reads one recording's packets in order.
type Reader struct{}

// NewReader opens a reader positioned at from.
func (s *Store) NewReader(key string, from time.Duration) (*Reader, error) { return nil, ErrNotFound }

// Next returns the next packet.
func (r *Reader) Next(ctx context.Context) (Packet, error) { return Packet{}, io.EOF }

// Close releases the reader.
func (r *Reader) Close() error { return nil }

// DecodeSegment decodes an encoded segment.
func DecodeSegment(data []byte) ([]Packet, error) { return nil, ErrCorrupt }

// Segment returns the raw bytes of a sealed segment and its hash.
func (s *Store) Segment(key string, index uint32) ([]byte, Hash, error) {
	return nil, Hash{}, ErrNotFound
}

// WaitSegment waits until segment index is sealed or the recording stopped filling.
func (s *Store) WaitSegment(ctx context.Context, key string, index uint32) (Manifest, error) {
	return Manifest{}, ErrNotFound
}

// Info describes one recording in the catalogue.
type Info struct {
	Key, ID             string
	State               State
	Live                bool
	Duration            time.Duration
	Bytes, Packets      uint64
	Segments            int
	Created, LastAccess time.Time
	Hits                uint64
	Source              string
	Pinned              bool
	Readers             int
	Filling             bool
}

// List returns every recording.
func (s *Store) List() ([]Info, error) { return nil, nil }

// Info describes one recording.
func (s *Store) Info(key string) (Info, error) { return Info{}, ErrNotFound }

// Delete removes a recording.
func (s *Store) Delete(key string) error { return ErrNotFound }

// SetPinned pins or unpins a recording.
func (s *Store) SetPinned(key string, pinned bool) error { return ErrNotFound }

// Usage reports bytes used and the quota.
func (s *Store) Usage() (used, max int64) { return 0, 0 }
