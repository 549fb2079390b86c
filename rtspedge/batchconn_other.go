//go:build !linux

package rtspedge

// rawWrites: elsewhere the replay writes through the connection's Write.
const rawWrites = false

// writeRaw is not used where rawWrites is false.
func (c *batchConn) writeRaw(uintptr) bool { return true }
