package gateway

import (
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
)

// Browsers may reach a keygate on localhost from any page the operator
// opens: a cross-origin POST of text/plain needs no preflight, and DNS
// rebinding lets a page read the answer under its own host name. So a
// browser request (one with Origin, or a cross-site Sec-Fetch-Site) is
// served only from keygate's own origin or one CORS_ORIGINS allows, and an
// open gateway (no GATEWAY_API_KEYS) answers only Host values that name
// this machine. Health and metrics stay open to any Host, for probes and
// Prometheus that reach keygate by a service name.

// browserGuard holds what the checks compare with.
type browserGuard struct {
	anyOrigin bool
	origins   []string // lower case, no trailing slash
	checkHost bool
	hosts     map[string]bool // lower case, without port
}

func newBrowserGuard(origins, allowedHosts []string, open bool) *browserGuard {
	g := &browserGuard{checkHost: open, hosts: map[string]bool{"localhost": true}}
	for _, o := range origins {
		if o == "*" {
			g.anyOrigin = true
			continue
		}
		g.origins = append(g.origins, strings.ToLower(strings.TrimRight(o, "/")))
	}
	for _, h := range allowedHosts {
		g.hosts[strings.ToLower(h)] = true
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		name = strings.ToLower(name)
		g.hosts[name] = true
		short, _, _ := strings.Cut(name, ".")
		g.hosts[short] = true
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				g.hosts[n.IP.String()] = true
			}
		}
	}
	return g
}

// openPaths answer any Host: probes and scrapers name keygate by service.
var openPaths = [...]string{"/healthz", "/readyz", "/metrics"}

// allowedHost reports whether r's Host names this machine.
func (g *browserGuard) allowedHost(r *http.Request) bool {
	if !g.checkHost || r.Host == "" || slices.Contains(openPaths[:], r.URL.Path) {
		return true
	}
	host := strings.ToLower(r.Host)
	// Without a colon there is no port (and no error to build).
	if strings.IndexByte(host, ':') >= 0 {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if g.hosts[host] || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || g.hosts[ip.String()])
}

// origin returns the browser origin of r and whether r comes from a
// browser on another site. Same-origin requests (a page keygate serves)
// are not cross-site.
func crossSite(r *http.Request) (origin string, cross bool) {
	origin = r.Header.Get("Origin")
	if origin == "" {
		switch r.Header.Get("Sec-Fetch-Site") {
		case "", "same-origin", "none":
			return "", false
		}
		return "", true
	}
	if u, ok := strings.CutPrefix(origin, "http://"); ok && strings.EqualFold(u, r.Host) {
		return origin, false
	}
	if u, ok := strings.CutPrefix(origin, "https://"); ok && strings.EqualFold(u, r.Host) {
		return origin, false
	}
	return origin, true
}

func (g *browserGuard) allowedOrigin(origin string) bool {
	if origin == "" {
		return false
	}
	return g.anyOrigin || slices.ContainsFunc(g.origins, func(o string) bool { return strings.EqualFold(o, origin) })
}

// exposed are the answer headers a browser app may read.
const exposed = "X-Keygate-Key, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, X-Request-Id, X-Generation-Id"

// guardOutcome is what the browser checks make of a request.
type guardOutcome uint8

const (
	// guardPass: not a cross-site browser request; it goes on.
	guardPass guardOutcome = iota
	// guardCORS: an allowed cross-site request; it goes on with CORS
	// headers.
	guardCORS
	// guardPreflight: an allowed preflight, answered 204.
	guardPreflight
	// guardHost: a Host that is not this machine, refused 403.
	guardHost
	// guardOrigin: an origin CORS_ORIGINS does not allow, refused 403.
	guardOrigin
)

// answers reports whether the outcome is an answer of the guard's own, not
// a request that goes on.
func (o guardOutcome) answers() bool { return o >= guardPreflight }

// check judges r; origin is its Origin when it is cross-site.
func (g *browserGuard) check(r *http.Request) (out guardOutcome, origin string) {
	if !g.allowedHost(r) {
		return guardHost, ""
	}
	origin, cross := crossSite(r)
	switch {
	case !cross:
		return guardPass, ""
	case !g.allowedOrigin(origin):
		return guardOrigin, origin
	case r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "":
		return guardPreflight, origin
	}
	return guardCORS, origin
}

// serve acts on check's outcome: it answers a refusal (403) or an allowed
// preflight itself, and sets the CORS headers of an allowed browser
// request that goes on.
func (g *browserGuard) serve(w http.ResponseWriter, r *http.Request, out guardOutcome, origin string) {
	switch out {
	case guardPass:
		return
	case guardHost:
		// Closed after the answer: the server then waits for no body.
		w.Header().Set("Connection", "close")
		markNoKey(w, r)
		writeAPIError(w, http.StatusForbidden, "forbidden_host",
			"Host "+quoteHost(r.Host)+" is not this machine: without GATEWAY_API_KEYS keygate answers only localhost, its own addresses and names, and ALLOWED_HOSTS (against DNS rebinding)")
		return
	case guardOrigin:
		w.Header().Set("Connection", "close")
		markNoKey(w, r)
		writeAPIError(w, http.StatusForbidden, "forbidden_origin",
			"browser requests from other origins are refused; allow this one in CORS_ORIGINS")
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", exposed)
	if out == guardPreflight {
		h.Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
		// SDKs send headers of their own (x-stainless-*, openai-beta,
		// http-referer, x-title): whatever the browser asks for is allowed,
		// since the origin is.
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
		}
		h.Set("Access-Control-Max-Age", "600")
		markNoKey(w, r)
		w.WriteHeader(http.StatusNoContent)
	}
}

// quoteHost quotes a client's Host for an error message, short and
// printable.
func quoteHost(h string) string {
	if len(h) > 100 {
		h = h[:100]
	}
	return "\"" + strings.ToValidUTF8(strings.Map(func(r rune) rune {
		if r < ' ' || r == '"' || r == 0x7f {
			return '?'
		}
		return r
	}, h), "?") + "\""
}
