package router

import "github.com/lunora/lunorad/internal/lifecycle"

// The lifecycle Manager and its Lease are what cmd/lunorad plugs in; these
// guards fail the build when either drifts from the interfaces declared here.
var (
	_ Control = (*lifecycle.Manager)(nil)
	_ Lease   = (*lifecycle.Lease)(nil)
)
