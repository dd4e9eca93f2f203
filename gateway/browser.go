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

// serve answers r itself and reports true when it is refused (403) or is
// an allowed preflight; it sets the CORS headers of an allowed browser
// request that goes on.
func (g *browserGuard) serve(w http.ResponseWriter, r *http.Request) bool {
	if !g.allowedHost(r) {
		// Closed after the answer: the server then waits for no body.
		w.Header().Set("Connection", "close")
		markNoKey(w, r)
		writeAPIError(w, http.StatusForbidden, "forbidden_host",
			"Host "+quoteHost(r.Host)+" is not this machine: without GATEWAY_API_KEYS keygate answers only localhost, its own addresses and names, and ALLOWED_HOSTS (against DNS rebinding)")
		return true
	}
	origin, cross := crossSite(r)
	if !cross {
		return false
	}
	if !g.allowedOrigin(origin) {
		w.Header().Set("Connection", "close")
		markNoKey(w, r)
		writeAPIError(w, http.StatusForbidden, "forbidden_origin",
			"browser requests from other origins are refused; allow this one in CORS_ORIGINS")
		return true
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", exposed)
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
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
		return true
	}
	return false
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
