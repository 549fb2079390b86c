// Command rtspmesh runs a node of the rtspmesh cooperative RTSP cache.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "rtspmesh: under construction")
	os.Exit(2)
}
