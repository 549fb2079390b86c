package testkit

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// ProfileCPU starts a CPU profile of this process into the file named by
// the environment variable env, when it is set, and returns the function
// that stops it (a no-op when env is unset).
func ProfileCPU(env string) (stop func(), err error) {
	f := os.Getenv(env)
	if f == "" {
		return func() {}, nil
	}
	out, err := os.Create(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", env, err)
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		out.Close()
		return nil, fmt.Errorf("%s: %w", env, err)
	}
	return func() { pprof.StopCPUProfile(); out.Close() }, nil
}
