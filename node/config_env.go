package node

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// EnvPrefix starts every environment variable a node reads.
//
// Each scalar or list key has a variable: RTSPMESH_ followed by the dotted
// key upper-cased with dots as underscores, e.g.
//
//	rtsp.listen         RTSPMESH_RTSP_LISTEN=:8554
//	data_dir            RTSPMESH_DATA_DIR=/var/lib/rtspmesh
//	log.level           RTSPMESH_LOG_LEVEL=debug
//	cache.max_bytes     RTSPMESH_CACHE_MAX_BYTES=20GiB
//	mesh.bootstrap      RTSPMESH_MESH_BOOTSTRAP=/ip4/10.0.0.1/tcp/4001/p2p/12D3...,/dns4/...
//
// Lists are comma-separated; booleans are true/false/1/0. Origins are set in
// the file only, but their credentials can come from the environment so the
// file holds no secret: RTSPMESH_ORIGIN_<NAME>_USERNAME and
// RTSPMESH_ORIGIN_<NAME>_PASSWORD, where <NAME> is the origin's name
// upper-cased with '.' and '-' as '_'. A player user of rtsp.auth.users may
// take its password from RTSPMESH_PLAYER_<NAME>_PASSWORD (same upper-casing)
// instead of an ha1 in the file. RTSPMESH_CONFIG names the config file
// (read by the command, ignored here). Any other RTSPMESH_* variable is an
// error, so a typo does not go unnoticed.
const EnvPrefix = "RTSPMESH_"

// EnvConfigFile names the config file when --config is not given.
const EnvConfigFile = EnvPrefix + "CONFIG"

// Keys lists the dotted config keys that Set and the environment accept
// (every key except the origins list), in file order.
func Keys() []string {
	var keys []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" {
				continue
			}
			key := joinKey(prefix, name)
			switch {
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, key)
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				// origins: file only
			case key == "version":
			default:
				keys = append(keys, key)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return keys
}

// EnvName is the environment variable for a dotted key.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Set assigns one key from its text form, as a flag or an environment
// variable gives it: "rtsp.listen" ":8554", "cache.max_bytes" "20GiB",
// "mesh.bootstrap" "/ip4/…/p2p/…,/ip4/…" (comma-separated lists).
func (c *Config) Set(key, value string) error {
	v := reflect.ValueOf(c).Elem()
	for part := range strings.SplitSeq(key, ".") {
		if v.Kind() != reflect.Struct {
			return fmt.Errorf("%s: unknown key", key)
		}
		f, ok := yamlFields(v.Type())[part]
		if !ok {
			return fmt.Errorf("%s: unknown key; known keys: %s", key, strings.Join(Keys(), ", "))
		}
		v = v.FieldByIndex(f.Index)
	}
	if key == "version" || key == "origins" || v.Kind() == reflect.Struct && !isScalarType(v.Type()) {
		return fmt.Errorf("%s: cannot be set from a flag or the environment; set it in the config file", key)
	}
	switch p := v.Addr().Interface().(type) {
	case *Duration:
		d, err := ParseDuration(value)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		*p = d
	case *ByteSize:
		b, err := ParseByteSize(value)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		*p = b
	case *MemoryLimit:
		m, err := ParseMemoryLimit(value)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		*p = m
	case *Bitrate:
		b, err := ParseBitrate(value)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		*p = b
	case *string:
		*p = value
	case *bool:
		b, err := strconv.ParseBool(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("%s: %q is not a boolean; write true or false", key, value)
		}
		*p = b
	case *int:
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("%s: %q is not a whole number", key, value)
		}
		*p = n
	case *[]string:
		*p = splitList(value)
	default:
		return fmt.Errorf("%s: cannot be set from text", key)
	}
	return nil
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// ApplyEnv applies RTSPMESH_* variables from environ (os.Environ() form,
// "NAME=value") over c; see EnvPrefix for the mapping. Apply it after
// LoadFile, so that origin credentials find their origin.
func (c *Config) ApplyEnv(environ []string) error {
	byEnv := make(map[string]string)
	for _, k := range Keys() {
		byEnv[EnvName(k)] = k
	}
	var errs []error
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || name == EnvConfigFile {
			continue
		}
		if key, ok := byEnv[name]; ok {
			if err := c.Set(key, value); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
			continue
		}
		if c.setOriginCredential(name, value) || c.setPlayerPassword(name, value) {
			continue
		}
		errs = append(errs, fmt.Errorf("%s: unknown variable; the names are %s<KEY> for the keys in configs/node.yaml, "+
			"%sORIGIN_<NAME>_USERNAME/_PASSWORD for configured origins and %sPLAYER_<NAME>_PASSWORD for rtsp.auth users",
			name, EnvPrefix, EnvPrefix, EnvPrefix))
	}
	return errors.Join(errs...)
}

func (c *Config) setOriginCredential(name, value string) bool {
	for i := range c.Origins {
		o := &c.Origins[i]
		base := EnvPrefix + "ORIGIN_" + envSegment(o.Name) + "_"
		switch name {
		case base + "USERNAME":
			o.Username = value
			return true
		case base + "PASSWORD":
			o.Password = value
			return true
		}
	}
	return false
}
