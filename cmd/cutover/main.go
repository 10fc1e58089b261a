// Command cutover is the continuous-delivery server and CLI.
package main

import (
	"os"

	"github.com/cutover/cutover/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
