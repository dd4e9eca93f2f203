package gateway

import (
	"net/http"
	"slices"
	"strings"
	"sync"
)

// A path outside every route gets the JSON error shape of /v1 with a hint:
// the passthrough path it probably meant, and the routes that exist. The
// usual slip is an SDK's base URL without /v1 (…/chat/completions), or one
// copied from another gateway.

// maxQuotedPath bounds how much of the client's path a 404 answer quotes.
const maxQuotedPath = 200

// apiSegments are first path segments of the OpenAI and OpenRouter APIs: a
// path starting with one of them was meant for the passthrough.
var apiSegments = [...]string{
	"chat", "completions", "embeddings", "models", "responses", "messages", "moderations",
	"images", "audio", "files", "batches", "generation", "key", "credits", "providers", "rerank",
}

// routeHint is the list of routes a 404 names, built once from the router
// after every route was added.
type routeHint struct {
	once sync.Once
	text string
}

// notFoundMessage words the 404 of a request no route serves.
func (s *Server) notFoundMessage(r *http.Request) string {
	path := s.clip(r.URL.EscapedPath(), maxQuotedPath)
	var b strings.Builder
	b.WriteString("not found: ")
	b.WriteString(r.Method)
	b.WriteByte(' ')
	b.WriteString(path)
	if guess := passthroughGuess(r.URL.EscapedPath()); guess != "" && len(guess) <= maxQuotedPath+len("/api/v1") {
		b.WriteString(" (did you mean ")
		b.WriteString(s.redact(guess))
		b.WriteString("?)")
	}
	b.WriteString("; keygate serves ")
	b.WriteString(s.routeList())
	return b.String()
}

// passthroughGuess returns the passthrough path that an API path without
// its version prefix was meant to be (/chat/completions:
// /v1/chat/completions; /api/chat/completions: /api/v1/chat/completions),
// or "".
func passthroughGuess(path string) string {
	prefix, rest := "/v1", path
	if r, ok := strings.CutPrefix(path, "/api/"); ok {
		prefix, rest = "/api/v1", "/"+r
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	if !slices.Contains(apiSegments[:], first) {
		return ""
	}
	return prefix + rest
}

// routeList names every route: the passthrough's two prefixes, then the
// router's routes by path (HEAD left out where GET is there too).
func (s *Server) routeList() string {
	s.hint.once.Do(func() {
		methods := map[string][]string{}
		for _, rt := range s.echo.Routes() {
			if !slices.Contains(methods[rt.Path], rt.Method) {
				methods[rt.Path] = append(methods[rt.Path], rt.Method)
			}
		}
		paths := make([]string, 0, len(methods))
		for p := range methods {
			paths = append(paths, p)
		}
		slices.Sort(paths)
		parts := []string{"/v1/* and /api/v1/* (the OpenAI-compatible passthrough, any method)"}
		for _, p := range paths {
			ms := methods[p]
			if slices.Contains(ms, http.MethodGet) {
				ms = slices.DeleteFunc(ms, func(m string) bool { return m == http.MethodHead })
			}
			slices.Sort(ms)
			if len(ms) > 4 {
				// Mounted for every method (the admin API answers the
				// wrong ones itself).
				parts = append(parts, p+" (the admin API, with ADMIN_TOKEN)")
				continue
			}
			parts = append(parts, strings.Join(ms, "|")+" "+p)
		}
		s.hint.text = strings.Join(parts, ", ")
	})
	return s.hint.text
}
