package node

import "github.com/rtspmesh/rtspmesh/mesh"

// MeshOf is n's mesh, for tests that cut and heal connections.
func MeshOf(n *Node) *mesh.Mesh { return n.mesh }

// KeyOf is the stream key of a request path on n.
func KeyOf(n *Node, path string) (string, error) {
	_, key, err := MapPath(n.cfg.Origins, path)
	return key, err
}
