// Package readiness_test checks issue 5 end to end against a real daemon and
// Docker Engine: no request reaches a container before every required port
// answers and every readyOn probe passes, and a container that will never be
// ready fails fast with a message that says why.
package readiness_test

import (
	"testing"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
)

// imageDir is the testserver build context, made once for the package.
var imageDir string

func TestMain(m *testing.M) { daemontest.Main(m, &imageDir) }
