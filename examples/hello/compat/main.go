// Command compat is hello's backwards-compatibility test: cutover runs the
// copy from the oldest compatible version against a new release before it
// is promoted (COMPAT_TARGET_URL points at it). It checks what clients of
// this version rely on.
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	base := os.Getenv("COMPAT_TARGET_URL")
	if base == "" {
		fmt.Fprintln(os.Stderr, "COMPAT_TARGET_URL is not set")
		os.Exit(2)
	}
	req, err := http.NewRequest("GET", base+"/api/greeting", nil)
	if err != nil {
		fail(err)
	}
	if h := os.Getenv("COMPAT_TARGET_HOST"); h != "" {
		req.Host = h
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		fail(fmt.Errorf("GET /api/greeting: status %d", resp.StatusCode))
	}
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		fail(fmt.Errorf("GET /api/greeting: %v", err))
	}
	if body["greeting"] == "" {
		fail(fmt.Errorf("GET /api/greeting: field \"greeting\" missing in %v", body))
	}
	fmt.Printf("ok: /api/greeting has greeting=%q (version %s)\n", body["greeting"], body["version"])
}

func fail(err error) {
	fmt.Println("FAIL:", err)
	os.Exit(1)
}
