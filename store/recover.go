package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// recover loads headers, turns interrupted fills into `partial` and finishes
// interrupted deletions.
func (s *Store) recover() error {
	if err := s.load(); err != nil {
		return err
	}
	return s.repair()
}

// repairs are the writes load found necessary: headers of interrupted fills
// and the deletions that tombstones left unfinished.
type repairs struct {
	fix   []*recording
	tombs [][]byte
}

// load reads the catalogue without writing: interrupted fills are `partial`
// in memory, and what must be written to match is kept for repair.
func (s *Store) load() error {
	var fix []*recording
	var tombs [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte(pfxHeader)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			id := string(item.Key()[len(pfxHeader):])
			var h header
			err := item.Value(func(v []byte) error {
				var err error
				h, err = decodeHeader("", v)
				return err
			})
			if err == nil && StreamID(h.M.Key) != id {
				err = fmt.Errorf("manifest %s: %w: holds key of another stream", id, ErrCorrupt)
			}
			if err != nil {
				err = fmt.Errorf("stream %s: %w", id, err)
				s.log.Error("unreadable manifest; recording unavailable", "stream", id, "err", err)
				s.broken[id] = err
				continue
			}
			rec := &recording{key: h.M.Key, id: id, seq: h.Seq, hdr: h, lastTT: h.LastTT, lastPN: h.LastPN, hasLast: h.HasLast}
			s.recs[h.M.Key] = rec
			s.used += h.StoredBytes
			s.nextSeq = max(s.nextSeq, h.Seq+1)
			if h.M.State == StateFilling || h.M.State == StateLive {
				fix = append(fix, rec)
			}
		}
		it2 := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxTomb, '/'}})
		defer it2.Close()
		for it2.Rewind(); it2.Valid(); it2.Next() {
			k := it2.Item().KeyCopy(nil)
			if len(k) != 10 {
				s.log.Error("ignoring malformed tombstone", "key", fmt.Sprintf("%x", k))
				continue
			}
			s.nextSeq = max(s.nextSeq, binary.BigEndian.Uint64(k[2:])+1)
			tombs = append(tombs, k)
		}
		// Segments whose header is unreadable still hold their sequence
		// number: never reuse it. The last i/ key has the highest.
		it3 := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: []byte{pfxInfo, '/'}})
		defer it3.Close()
		if it3.Seek([]byte{pfxInfo, '/' + 1}); it3.Valid() {
			if k := it3.Item().Key(); len(k) >= 10 {
				s.nextSeq = max(s.nextSeq, binary.BigEndian.Uint64(k[2:])+1)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, rec := range fix {
		rec.hdr.M.State = StatePartial
	}
	s.repairs = &repairs{fix: fix, tombs: tombs}
	return nil
}

// repair makes the store match what load found: interrupted fills become
// `partial` on disk, live windows drop what they left, deletions finish.
func (s *Store) repair() error {
	r := s.repairs
	s.repairs = nil
	if r == nil {
		return nil
	}
	for _, rec := range r.fix {
		if err := s.persistHeader(rec); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		s.log.Info("interrupted fill is now partial", "stream", rec.id, "segments", rec.hdr.NextIndex-rec.hdr.FirstIndex)
	}
	// A crash may have left the last completed blocks of a live window undropped.
	s.mu.Lock()
	for _, rec := range s.recs {
		if f := rec.hdr.FirstIndex >> blockShift; rec.hdr.M.Live && f > 0 {
			s.queueBlockDropsLocked(rec.seq, (max(f, 2)-2)<<blockShift, rec.hdr.FirstIndex)
		}
	}
	s.mu.Unlock()
	for _, k := range r.tombs {
		if err := s.purgeKeys(binary.BigEndian.Uint64(k[2:])); err != nil {
			return err
		}
	}
	return nil
}

// brokenErr says why key's manifest could not be read at Open, if it could not.
func (s *Store) brokenErr(key string) error {
	id := StreamID(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.broken[id]; err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// purge deletes rec from Badger: first its header (with a tombstone, in one
// transaction, so a crash cannot resurrect it), then its segments.
func (s *Store) purge(rec *recording) error {
	rec.wmu.Lock()
	err := s.update(func(txn *badger.Txn) error {
		if err := txn.Delete(headerKey(rec.key)); err != nil {
			return err
		}
		return txn.Set(seqPrefix(pfxTomb, rec.seq), []byte(rec.key))
	})
	rec.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("delete %s: %w", rec.key, err)
	}
	s.cache.drop(rec.seq, ^uint32(0))
	if err := s.purgeKeys(rec.seq); err != nil {
		return fmt.Errorf("delete %s: %w", rec.key, err)
	}
	return nil
}

// purgeKeys drops the i/ and s/ keys of seq, then its tombstone. DropPrefix
// (unlike per-key deletes) also tells the value log at once that the
// segments are garbage, so value-log GC can reclaim their space; it blocks
// writes meanwhile, which s.writeMu arranges.
func (s *Store) purgeKeys(seq uint64) error {
	if err := s.space.admit(headerWrite, false); err != nil {
		return err
	}
	defer s.space.release(headerWrite)
	err := s.withDB(func(db *badger.DB) error {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
		return db.DropPrefix(seqPrefix(pfxInfo, seq), seqPrefix(pfxSeg, seq))
	})
	if err != nil {
		return err
	}
	return s.update(func(txn *badger.Txn) error { return txn.Delete(seqPrefix(pfxTomb, seq)) })
}

// Segments that leave a live window are only cut off logically at first (the
// header's first index moves past them; nothing reads below it). Per-key
// deletes would not do: the value log learns that a value is garbage only
// when Badger compacts its key, which for this store's small LSM practically
// never happens, so the disk would fill. Instead, once every segment of an
// aligned block of 64 indices has left the window, the block's keys are
// dropped by prefix on the Store's goroutine, which lets value-log GC reclaim
// them. A live recording thus holds at most one block beyond its window.
const blockShift = 6

type segBlock struct {
	seq   uint64
	block uint32 // index >> blockShift
}

func blockPrefix(pfx byte, b segBlock) []byte {
	return segKey(pfx, b.seq, b.block<<blockShift)[:segKeyLen-1]
}

// queueBlockDrops queues the blocks that the window's first index moving from
// oldFirst to newFirst completed.
func (s *Store) queueBlockDrops(seq uint64, oldFirst, newFirst uint32) {
	s.mu.Lock()
	s.queueBlockDropsLocked(seq, oldFirst, newFirst)
	s.mu.Unlock()
}

func (s *Store) queueBlockDropsLocked(seq uint64, oldFirst, newFirst uint32) {
	from, to := oldFirst>>blockShift, newFirst>>blockShift
	if from == to {
		return
	}
	for b := from; b < to; b++ {
		s.drops = append(s.drops, segBlock{seq, b})
	}
	select {
	case s.dropCh <- struct{}{}:
	default:
	}
}

// dropBlocks drops the queued blocks in one DropPrefix.
func (s *Store) dropBlocks() {
	s.mu.Lock()
	blocks := s.drops
	s.drops = nil
	s.mu.Unlock()
	if len(blocks) == 0 {
		return
	}
	prefixes := make([][]byte, 0, 2*len(blocks))
	for _, b := range blocks {
		prefixes = append(prefixes, blockPrefix(pfxSeg, b), blockPrefix(pfxInfo, b))
	}
	err := s.space.admit(headerWrite, false)
	if err == nil {
		defer s.space.release(headerWrite)
		err = s.withDB(func(db *badger.DB) error {
			s.writeMu.Lock()
			defer s.writeMu.Unlock()
			return db.DropPrefix(prefixes...)
		})
	}
	if errors.Is(err, ErrNoSpace) {
		s.mu.Lock()
		s.drops = append(blocks, s.drops...) // the next drop retries them
		s.mu.Unlock()
		return
	}
	if err != nil && !errors.Is(err, ErrClosed) {
		s.log.Warn("drop live-window segments", "blocks", len(blocks), "err", err)
	}
}
