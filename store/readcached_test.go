package store

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestReadCached: readCached reads what ReadAt reads, whole, at any offset
// (from the page cache, or the rest by ReadAt), and fails past the end as
// ReadAt does.
func TestReadCached(t *testing.T) {
	t.Parallel()
	data := make([]byte, 200<<10)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw := rawConnOf(f)
	for _, c := range []struct{ off, n int }{{0, 16 << 10}, {5, 1}, {4095, 8193}, {len(data) - 100, 100}, {123456, 70000}} {
		buf := make([]byte, c.n)
		n, err := readCached(f, raw, buf, int64(c.off))
		if err != nil || n != c.n || !bytes.Equal(buf, data[c.off:c.off+c.n]) {
			t.Fatalf("read %d at %d: %d bytes, %v, equal %v", c.n, c.off, n, err, bytes.Equal(buf[:n], data[c.off:c.off+n]))
		}
	}
	buf := make([]byte, 200)
	if n, err := readCached(f, raw, buf, int64(len(data)-100)); n != 100 || err != io.EOF {
		t.Fatalf("read past the end: %d bytes, %v; want 100, EOF", n, err)
	}
}
