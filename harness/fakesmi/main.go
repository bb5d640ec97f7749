// Command fakesmi is a fake nvidia-smi for rbee's tests: it prints the real
// captures' formats for the scenario in scenario.json next to it (see
// package gpufake). Tests get it through harness.FakeNvidiaSMI.
package main

import (
	"os"

	"github.com/rbee-dev/rbee/harness/gpufake"
)

func main() { os.Exit(gpufake.Main(os.Args[1:], os.Stdout, os.Stderr)) }
