package cli

import (
	"os"
	"strings"
	"testing"

	"github.com/cutover-dev/cutover/internal/lab"
)

// TestMain runs the tests in a network namespace of their own, where the
// lab's servers (the selftest's) live. A test binary started with
// mainArgsEnv set is cutover itself (abort_test.go).
func TestMain(m *testing.M) {
	if args := os.Getenv(mainArgsEnv); args != "" {
		os.Exit(Main(strings.Split(args, "\t")))
	}
	lab.Main(m)
}
