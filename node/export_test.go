package node

import "github.com/rtspmesh/rtspmesh/mesh"

// MeshOf is n's mesh, for tests that cut and heal connections.
func MeshOf(n *Node) *mesh.Mesh { return n.mesh }
