package node

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written in configs the way Go prints it:
// "300ms", "10s", "2m", "1h30m". A bare number is refused, so "30" never
// silently means 30 nanoseconds.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d like time.Duration without zero trailing units:
// "10s", "2m", "1h30m".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ParseDuration parses "30s", "2m", "1h". The text must carry a unit.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; write e.g. \"30s\", \"2m\" or \"1h\"", s)
	}
	return Duration(v), nil
}

// UnmarshalYAML reads a duration scalar.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	return unmarshalScalar(n, "a duration such as \"30s\"", ParseDuration, d)
}

// unmarshalScalar parses a scalar node into *out, naming the line on error.
func unmarshalScalar[T any](n *yaml.Node, what string, parse func(string) (T, error), out *T) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected %s", n.Line, what)
	}
	v, err := parse(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*out = v
	return nil
}

// MarshalYAML writes d as "30s".
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalText writes d as "30s" (JSON, flag.TextVar).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads "30s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	*d = v
	return err
}

// ByteSize is a number of bytes written with a unit: "500MB" (decimal, 10^6),
// "50GiB" (binary, 2^30), "1.5TB", or a plain number of bytes ("1048576").
// Units are case-insensitive: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB (and K,
// M, G, T as shorthands for the binary units).
type ByteSize int64

var byteUnits = map[string]float64{
	"":    1,
	"b":   1,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
	"k":   1 << 10,
	"m":   1 << 20,
	"g":   1 << 30,
	"t":   1 << 40,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

// ParseByteSize parses "50GiB", "500MB", "1.5TB" or "1048576".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := byteUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("%q is not a size; write e.g. \"500MB\", \"50GiB\" or a number of bytes", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size; write e.g. \"500MB\", \"50GiB\" or a number of bytes", s)
	}
	b := v * mult
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return ByteSize(math.Round(b)), nil
}

// String prints b with the largest unit that represents it exactly
// ("50GiB", "500MB", "1234B").
func (b ByteSize) String() string {
	if b == 0 {
		return "0"
	}
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"TB", 1e12}, {"GiB", 1 << 30}, {"GB", 1e9},
		{"MiB", 1 << 20}, {"MB", 1e6}, {"KiB", 1 << 10}, {"KB", 1e3}} {
		if int64(b)%u.size == 0 {
			return strconv.FormatInt(int64(b)/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// UnmarshalYAML reads a size scalar.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	return unmarshalScalar(n, "a size such as \"50GiB\"", ParseByteSize, b)
}

// MarshalYAML writes b as "50GiB".
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// MarshalText writes b as "50GiB" (JSON, flag.TextVar).
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText reads "50GiB".
func (b *ByteSize) UnmarshalText(t []byte) error {
	v, err := ParseByteSize(string(t))
	*b = v
	return err
}
