package mesh

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// identityFile is the name of the node's private key inside Config.DataDir.
const identityFile = "peer.key"

// loadIdentity returns the node's private key from dir, creating it (Ed25519,
// file mode 0600) on first start, so the peer id survives restarts.
func loadIdentity(dir string, log *slog.Logger) (crypto.PrivKey, error) {
	path := filepath.Join(dir, identityFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("identity %s: %w", path, err)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("identity key is readable by others; chmod 600 it", "file", path, "mode", fi.Mode().Perm().String())
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("identity: %w", err)
	}
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generate: %w", err)
	}
	b, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if err := writeFileAtomic(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return k, nil
}

// writeFileAtomic writes b to path through a temporary file in the same
// directory, so a crash leaves either the old file or the new one.
func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Identity is the peer id of the node whose data directory is dir: its
// identity key is read, or created as the node's first start would (so a
// node started on dir later has this id). A caller can know a node's id
// before it starts: the demo names its nodes by their place in the filler
// rule (ClosestMember).
func Identity(dir string, log *slog.Logger) (peer.ID, error) {
	k, err := loadIdentity(dir, log)
	if err != nil {
		return "", err
	}
	return peer.IDFromPrivateKey(k)
}
