// Package webui is keygate's status page: what an operator opens first. Its
// files are embedded in the binary (no CDN, no build step); the first paint
// is rendered on the server with html/template, then a little plain
// JavaScript polls GET /status.json and redraws.
//
// Polling with fetch, not EventSource: an EventSource cannot send an
// Authorization header, so the token would have to travel in the URL, where
// proxies and access logs keep it. A poll every 1.5 s of a few KiB is cheap.
package webui

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/access"
)

// Source gives the pool's state for the page. It is called once per page
// load and per poll (about every 1.5 s per open page), so it must be cheap:
// reads of atomics and snapshots, no Redis round trip.
type Source interface {
	Snapshot(ctx context.Context) Snapshot
}

// SourceFunc adapts a function to Source.
type SourceFunc func(context.Context) Snapshot

// Snapshot calls fn.
func (fn SourceFunc) Snapshot(ctx context.Context) Snapshot { return fn(ctx) }

// Paths the page is served on; the gateway routes them to the Handler.
const (
	PagePath   = "/"
	StatusPath = "/status.json"
	// AssetPrefix holds the page's CSS and JavaScript.
	AssetPrefix = "/ui/"
)

// PollInterval is how often the page asks for new data, in milliseconds.
const PollInterval = 1500

//go:embed page.html.tmpl
var pageFS embed.FS

//go:embed static
var staticFS embed.FS

var page = template.Must(template.New("page.html.tmpl").Funcs(template.FuncMap{
	"usd": fmtUSD, "deref": func(b *bool) bool { return b != nil && *b }, "count": fmtCount, "dur": fmtSeconds, "latency": fmtLatency,
}).ParseFS(pageFS, "page.html.tmpl"))

// Handler serves the page, its data and its files.
type Handler struct {
	guard  *access.Guard
	src    Source
	log    *slog.Logger
	files  fs.FS
	static http.Handler
}

// New returns the status page over src; guard decides who sees data and who
// gets the admin buttons. log (nil: discard) gets template failures.
func New(guard *access.Guard, src Source, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return &Handler{guard: guard, src: src, log: log, files: sub,
		static: http.StripPrefix(AssetPrefix, http.FileServerFS(sub))}
}

// HasAsset reports whether path (under AssetPrefix) names one of the page's
// files, so that the gateway answers any other path there as the unknown
// path it is.
func (h *Handler) HasAsset(path string) bool {
	name, ok := strings.CutPrefix(path, AssetPrefix)
	if !ok || !fs.ValidPath(name) {
		return false
	}
	fi, err := fs.Stat(h.files, name)
	return err == nil && !fi.IsDir()
}

// ServeHTTP routes GET / , GET /status.json and GET /ui/*.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	switch p := r.URL.Path; {
	case p == PagePath:
		h.page(w, r)
	case p == StatusPath:
		h.status(w, r)
	case len(p) > len(AssetPrefix) && p[:len(AssetPrefix)] == AssetPrefix:
		hd.Set("Cache-Control", "no-cache")
		h.static.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// pageData is the template's input. Rows are rendered only when the page
// needs no token: a request without one gets the shell alone.
type pageData struct {
	view
	Rows         bool
	PollInterval int
}

func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	d := pageData{PollInterval: PollInterval}
	d.TokenRequired, d.AdminEnabled = h.guard.TokenRequired(), h.guard.AdminEnabled()
	if !d.TokenRequired {
		d.view = newView(h.src.Snapshot(r.Context()))
		d.AdminEnabled = h.guard.AdminEnabled()
		d.Rows = true
	}
	var buf bytes.Buffer
	if err := page.Execute(&buf, d); err != nil {
		h.log.Error("status page failed to render", "event", "status_page_failed", "err", err)
		http.Error(w, "status page failed to render", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Type", "application/json")
	if !h.guard.Viewer(r) {
		hd.Set("WWW-Authenticate", `Bearer realm="keygate"`)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"message":"missing or invalid token: send Authorization: Bearer <one of GATEWAY_API_KEYS or ADMIN_TOKEN>","type":"invalid_request_error","code":401}}` + "\n"))
		return
	}
	v := newView(h.src.Snapshot(r.Context()))
	if v.At.IsZero() {
		v.At = time.Now()
	}
	v.Admin = h.guard.Admin(r)
	v.AdminEnabled, v.TokenRequired = h.guard.AdminEnabled(), h.guard.TokenRequired()
	b, err := json.Marshal(v)
	if err != nil {
		h.log.Error("status data failed to encode", "event", "status_data_failed", "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	hd.Set("Content-Length", strconv.Itoa(len(b)+1))
	_, _ = w.Write(append(b, '\n'))
}
