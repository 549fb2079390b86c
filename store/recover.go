package store

import (
	"encoding/binary"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// recover loads headers, turns interrupted fills into `partial` and finishes
// interrupted deletions.
func (s *Store) recover() error {
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
			if len(k) == 10 {
				s.nextSeq = max(s.nextSeq, binary.BigEndian.Uint64(k[2:])+1)
			}
			tombs = append(tombs, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, rec := range fix {
		rec.hdr.M.State = StatePartial
		if err := s.writeHeader(rec, &rec.hdr); err != nil {
			return err
		}
		s.log.Info("interrupted fill is now partial", "stream", rec.id, "segments", rec.hdr.NextIndex-rec.hdr.FirstIndex)
	}
	for _, k := range tombs {
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
	err := s.withDB(func(db *badger.DB) error {
		return db.Update(func(txn *badger.Txn) error {
			if err := txn.Delete(headerKey(rec.key)); err != nil {
				return err
			}
			return txn.Set(seqPrefix(pfxTomb, rec.seq), []byte(rec.key))
		})
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

// purgeKeys deletes the i/ and s/ keys of seq, then its tombstone.
func (s *Store) purgeKeys(seq uint64) error {
	return s.withDB(func(db *badger.DB) error {
		wb := db.NewWriteBatch()
		defer wb.Cancel()
		for _, pfx := range []byte{pfxInfo, pfxSeg} {
			err := db.View(func(txn *badger.Txn) error {
				it := txn.NewIterator(badger.IteratorOptions{Prefix: seqPrefix(pfx, seq)})
				defer it.Close()
				for it.Rewind(); it.Valid(); it.Next() {
					if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		if err := wb.Delete(seqPrefix(pfxTomb, seq)); err != nil {
			return err
		}
		return wb.Flush()
	})
}
