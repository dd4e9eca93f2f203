package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
)

// exchange is what the passthrough handler hands its proxy for one request.
type exchange struct {
	target *url.URL
	body   []byte
	call   relay.Call
}

type exchangeKey struct{}

// passthrough forwards /v1/* to the upstream base with a pool key.
type passthrough struct {
	relay    *relay.Relay
	strategy keyring.Strategy
	base     *url.URL
	maxBody  int64
	log      *slog.Logger
	tokens   TokenCounter
	proxy    *httputil.ReverseProxy
}

func newPassthrough(r *relay.Relay, st keyring.Strategy, base *url.URL, maxBody int64, log *slog.Logger, tokens TokenCounter) *passthrough {
	p := &passthrough{relay: r, strategy: st, base: base, maxBody: maxBody, log: log, tokens: tokens}
	p.proxy = &httputil.ReverseProxy{
		Rewrite:      rewrite,
		Transport:    roundTripper{p},
		ErrorHandler: p.proxyError,
		BufferPool:   newBufferPool(),
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return p
}

// dropped are client headers that never travel upstream: the client's own
// credentials. Hop-by-hop headers are removed by ReverseProxy.
var dropped = [...]string{"Authorization", "X-Api-Key", "Cookie"}

// forwarded are headers ReverseProxy's Rewrite mode strips but that the
// client sent itself and so are passed on.
var forwarded = [...]string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

func rewrite(pr *httputil.ProxyRequest) {
	ex := pr.In.Context().Value(exchangeKey{}).(*exchange)
	pr.Out.URL = ex.target
	pr.Out.Host = ""
	for _, h := range dropped {
		delete(pr.Out.Header, h)
	}
	for _, h := range forwarded {
		if v, ok := pr.In.Header[h]; ok {
			pr.Out.Header[h] = v
		}
	}
}

func (p *passthrough) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target, err := mapPath(p.base, r.URL)
	if err != nil {
		w.Header()["X-Keygate-Key"] = noKeyHeader
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", "invalid path: "+err.Error())
		return
	}
	body, err := readBody(w, r, p.maxBody)
	if err != nil {
		w.Header()["X-Keygate-Key"] = noKeyHeader
		writeBodyError(w, err, func(code int, msg string) { writeAPIError(w, code, "invalid_request_error", msg) })
		return
	}
	ex := &exchange{target: target, body: body}
	ex.call.Strategy = p.strategy
	ex.call.Model = modelOf(body)
	p.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex)))
}

var noKeyHeader = []string{"none"}

// roundTripper runs the proxy's outbound request through the relay, and
// taps successful answers for their token usage.
type roundTripper struct{ p *passthrough }

func (t roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	ex := req.Context().Value(exchangeKey{}).(*exchange)
	resp, err := t.p.relay.Do(req, ex.body, &ex.call)
	if err == nil && t.p.tokens != nil {
		tapUsage(resp, t.p.tokens, ex.call.Key.ID, ex.call.Model)
	}
	return resp, err
}

// proxyError answers a request for which upstream gave no response.
func (p *passthrough) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	ex := r.Context().Value(exchangeKey{}).(*exchange)
	if ex.call.Key != nil {
		w.Header()["X-Keygate-Key"] = []string{ex.call.Key.Label}
	} else {
		w.Header()["X-Keygate-Key"] = noKeyHeader
	}
	var nk *relay.NoKeyError
	switch {
	case errors.As(err, &nk):
		w.Header().Set("Retry-After", retryAfterSeconds(nk.RetryAfter))
		writeAPIError(w, http.StatusServiceUnavailable, "keys_unavailable",
			"no upstream API key is available: every key is cooling down; retry after "+retryAfterSeconds(nk.RetryAfter)+"s")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		p.log.Debug("client went away", "path", r.URL.Path, "err", err)
		w.WriteHeader(StatusClientClosed)
	case errors.Is(err, relay.ErrUpstreamTimeout):
		writeAPIError(w, http.StatusGatewayTimeout, "upstream_timeout", "upstream did not answer in time")
	default:
		p.log.Warn("upstream request failed", "path", r.URL.Path, "err", err)
		writeAPIError(w, http.StatusBadGateway, "upstream_error", "upstream request failed")
	}
}

// errBodyTooLarge is readBody's error for a body over the limit.
var errBodyTooLarge = errors.New("request body too large")

// readBody reads the whole request body, at most max bytes. It returns nil
// for an empty body.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > max {
		return nil, errBodyTooLarge
	}
	rd := http.MaxBytesReader(w, r.Body, max)
	var body []byte
	var err error
	if r.ContentLength > 0 {
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(rd, body)
	} else {
		body, err = io.ReadAll(rd)
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errBodyTooLarge
		}
		return nil, err
	}
	if len(body) == 0 {
		return nil, nil
	}
	return body, nil
}

// writeBodyError answers a request whose body could not be read.
func writeBodyError(w http.ResponseWriter, err error, write func(code int, msg string)) {
	if errors.Is(err, errBodyTooLarge) {
		write(http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	write(http.StatusBadRequest, "reading request body failed")
}
