//go:build !linux && !darwin

package store

// statfsFree is not implemented here: the free-space guard is off.
var statfsFree func(dir string) (int64, error)
