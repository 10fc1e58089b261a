// Command backend is the fallback upstream for bench/proxy when the shared
// bench tools are not beside the repository: GET / answers
// "hello from VERSION" with X-Version, /up answers 200, /slow waits -slow.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	version := flag.String("version", "v1", "version reported in the body and X-Version")
	slow := flag.Duration("slow", 2*time.Second, "delay of /slow")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("/up", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(*slow)
		w.Header().Set("X-Version", *version)
		fmt.Fprintf(w, "slow %s\n", *version)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Version", *version)
		fmt.Fprintf(w, "hello from %s\n", *version)
	})
	log.Fatal(http.ListenAndServe(*addr, mux))
}
