package selftest_test

import (
	"testing"

	"github.com/cutover-dev/cutover/internal/lab"
)

// TestMain runs the tests in a network namespace of their own, where the lab's servers live.
func TestMain(m *testing.M) { lab.Main(m) }
