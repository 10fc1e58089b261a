package proxy

import (
	"html"
	"net/http"
	"strconv"
)

// page writes a small error page: clear to a person, short for a machine.
// It drops headers set for a proxied response (copied upstream headers,
// cookies) but keeps a Retry-After the caller set for this page.
func page(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	retry := h.Get("Retry-After")
	for k := range h {
		delete(h, k)
	}
	if retry != "" {
		h.Set("Retry-After", retry)
	}
	body := "<!doctype html><html><head><title>" + strconv.Itoa(status) + " " + http.StatusText(status) +
		"</title></head><body><h1>" + strconv.Itoa(status) + " " + http.StatusText(status) + "</h1><p>" + html.EscapeString(msg) + "</p></body></html>\n"
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
