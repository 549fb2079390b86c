package node_test

import (
	"os"
	"testing"

	"github.com/rtspmesh/rtspmesh/internal/interop"
)

// TestMain gives the interop tests one directory of clips for the package.
func TestMain(m *testing.M) { os.Exit(interop.Main(m)) }
