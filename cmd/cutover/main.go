// Command cutover moves a live single-host service from an old server to a
// new one on a schedule, with DNS in the loop. See README.md.
package main

import (
	"os"

	"github.com/cutover-dev/cutover/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
