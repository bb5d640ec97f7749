// Command queen-rbee keeps the cluster's registry of hives and workers,
// answers scheduling queries, streams changes over Server-Sent Events and
// exports Prometheus metrics.
//
// Not built yet: the registry daemon arrives with the pipeline issue. This
// command only says so, so that nobody mistakes it for a working queen.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "-help") {
		fmt.Println("Usage: queen-rbee\n\nThe queen's registry daemon is not implemented yet (see the pipeline issue).")
		return
	}
	fmt.Fprintln(os.Stderr, "queen-rbee: the registry daemon is not implemented yet (see the pipeline issue)")
	os.Exit(2)
}
