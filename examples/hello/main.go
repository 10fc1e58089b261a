// Command hello is the example app deployed by `cutover demo` and the
// end-to-end tests. It listens on $HOST:$PORT (HOST defaults to 127.0.0.1;
// in a container it is 0.0.0.0, so the published port reaches it).
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		if err := migrate(); err != nil {
			log.Fatal(err)
		}
		return
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	host := os.Getenv("HOST")
	if host == "" {
		host = "127.0.0.1"
	}
	srv := &http.Server{Addr: net.JoinHostPort(host, port), Handler: newApp(time.Now()), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("hello %s listening on %s", Version, srv.Addr)
	if os.Getenv("HELLO_LOG_ENV") == "1" {
		// For tests of log redaction: print the whole environment, secrets included.
		for _, kv := range os.Environ() {
			log.Printf("env %s", kv)
		}
	}
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
	log.Printf("hello %s stopped", Version)
}

// migrate appends a line to $MIGRATIONS_LOG, standing in for a schema change.
func migrate() error {
	path := os.Getenv("MIGRATIONS_LOG")
	if path == "" {
		fmt.Println("migrate: nothing to do")
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), Version)
	return err
}

func newApp(boot time.Time) http.Handler {
	var once sync.Once
	var firstHit time.Time
	var mu sync.Mutex
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "hello"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/up", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case Broken == "boot", Broken == "slow" && time.Since(boot) < 3*time.Second:
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusOK)
		}
	})
	mux.HandleFunc("/api/greeting", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{%q: %q, \"version\": %q}\n", greetingField, greeting, Version)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("X-Version", Version)
		fmt.Fprintf(w, "slow %s from %s\n", greeting, Version)
	})
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		fl, ok := w.(http.Flusher)
		if !ok {
			http.Error(w, "streaming unsupported", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			fmt.Fprintf(w, "data: %s %d\n\n", Version, i)
			fl.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-t.C:
			}
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		once.Do(func() { mu.Lock(); firstHit = time.Now(); mu.Unlock() })
		mu.Lock()
		failing := Broken == "smoke" || (Broken == "after" && time.Since(firstHit) > time.Second)
		mu.Unlock()
		w.Header().Set("X-Version", Version)
		if failing {
			http.Error(w, "broken "+Version, http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%s from %s\n", greeting, Version)
	})
	return mux
}
