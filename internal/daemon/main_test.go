package daemon_test

import (
	"testing"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
)

// imageDir is the testserver build context, made once for the package.
var imageDir string

func TestMain(m *testing.M) { daemontest.Main(m, &imageDir) }
