package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
	"github.com/keygate/keygate/sse"
)

// exchange is what the passthrough handler hands its proxy for one request.
type exchange struct {
	target url.URL
	body   []byte
	call   relay.Call
	// counter gets the answer's token usage, which tokens keeps for the
	// access line (access.go).
	counter TokenCounter
	tokens  int
	// w is the client's writer, for the stream hold's commit at its
	// timeout (CommitHeld); heldTap the usage splitter that commit primed.
	w       http.ResponseWriter
	heldTap *sse.Splitter
	// tap is the answer's usage tap, kept here to save it an allocation.
	tap usageTap
	// stream: the request body asks for a stream ("stream": true).
	stream bool
	// info passes upstream's 1xx answers on.
	info informational
}

// exchangeCtx is the request's context carrying its exchange: one
// allocation where context.WithValue and the exchange would take two.
type exchangeCtx struct {
	context.Context
	ex exchange
}

// Value implements context.Context.
func (c *exchangeCtx) Value(key any) any {
	switch key {
	case relay.CommitterKey{}:
		return &c.ex
	case traceKey:
		return &c.ex.info.trace
	}
	return c.Context.Value(key)
}

// passthrough forwards /v1/* to the upstream base with a pool key.
type passthrough struct {
	relay    *relay.Relay
	strategy keyring.Strategy
	base     *url.URL
	body     bodyLimits
	log      *slog.Logger
	tokens   TokenCounter
	// buffers are the answers' copy buffers; streamBuffers smaller ones,
	// for requests that ask for a stream: a stream holds its buffer as
	// long as it lasts.
	buffers, streamBuffers *bufferPool
	// redactor masks pool keys that upstream error answers quote.
	redactor *secret.Redactor
	// spender takes free-model calls off their account's quota; nil
	// counts nothing.
	spender Spender
	// tokensOn: client tokens are set, so clients are told apart by token.
	tokensOn bool
}

func newPassthrough(r *relay.Relay, st keyring.Strategy, base *url.URL, body bodyLimits, log *slog.Logger, tokens TokenCounter) *passthrough {
	return &passthrough{relay: r, strategy: st, base: base, body: body, log: log, tokens: tokens,
		buffers: newBufferPool(copyBufferSize), streamBuffers: newBufferPool(streamCopyBufferSize)}
}

// Client headers shaped like credentials never travel upstream: their
// names, folded and with "_" read as "-", holding one of credentialWords
// (Authorization, X-Api-Key, X_Api_Key, Cookie, Cookie2, X-Auth-Token,
// Proxy-Authorization, X-Goog-Api-Key, Session-Id …). This is a deny-list
// by shape rather than an allow-list: the contract passes the client's
// headers on, and SDKs send ones of their own that change what upstream
// does (anthropic-beta, x-stainless-*, HTTP-Referer, X-Title …), which an
// allow-list would drop without a word each time one appears; a shape
// catches the spellings a list of names misses. Hop-by-hop headers are
// removed by outboundHeader.
var credentialWords = [...]string{"auth", "key", "token", "cookie", "secret", "session", "passw", "credential", "signature"}

// harmlessNames are headers that hold a credential word without being one.
var harmlessNames = [...]string{"Idempotency-Key"}

// credentialShaped reports whether a header name looks like a credential.
// It reads the name once, trying at each byte only the words that start
// with it. A search per word was 0.7 µs of each of the bench's requests
// in their profile; BenchmarkOutboundHeader, an SDK's sixteen headers,
// went from 1,860 to 1,450 ns.
func credentialShaped(name string) bool {
	for _, h := range harmlessNames {
		if len(name) == len(h) && strings.EqualFold(name, h) {
			return false
		}
	}
	for i := 0; i < len(name); i++ {
		for _, w := range credentialFirst[lowerASCII(name[i])] {
			if hasPrefixFold(name[i:], w) {
				return true
			}
		}
	}
	return false
}

// credentialFirst holds, for each lower-case first letter, the
// credentialWords that start with it.
var credentialFirst = func() (t [256][]string) {
	for _, w := range credentialWords {
		t[w[0]] = append(t[w[0]], w)
	}
	return t
}()

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasPrefixFold reports whether s starts with the lower-case ASCII word w,
// ignoring case.
func hasPrefixFold(s, w string) bool {
	if len(s) < len(w) {
		return false
	}
	for j := 0; j < len(w); j++ {
		if lowerASCII(s[j]) != w[j] {
			return false
		}
	}
	return true
}

// serve proxies r upstream with its exchange in xc, and hands the exchange
// to *seen (when seen is not nil) for the access line.
func (p *passthrough) serve(w http.ResponseWriter, r *http.Request, seen **exchange, xc *exchangeCtx) {
	// The proxy runs from this small frame: the goroutine of a stream
	// keeps the deepest stack its request ever needed, and the proxy's
	// first flush is that deepest point.
	if ctx := p.prepare(w, r, xc); ctx != nil {
		if seen != nil {
			*seen = &ctx.ex
		}
		p.forward(w, r, ctx)
	}
}

// prepare maps the path and reads the body into the request's exchange,
// in ctx; it answers the client itself and returns nil when either fails.
func (p *passthrough) prepare(w http.ResponseWriter, r *http.Request, ctx *exchangeCtx) *exchangeCtx {
	ctx.Context = r.Context()
	ex := &ctx.ex
	ex.w = w
	var err error
	if ex.target, err = mapPath(p.base, r.URL); err != nil {
		w.Header()["X-Keygate-Key"] = noKeyHeader
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", "invalid path: "+err.Error())
		return nil
	}
	rest := strings.TrimPrefix(r.URL.Path, v1Prefix(r.URL.Path))
	if describesKey(rest) {
		w.Header()["X-Keygate-Key"] = noKeyHeader
		writeAPIError(w, http.StatusForbidden, "invalid_request_error",
			"keygate does not forward GET /key: it would describe one pool key (its account, limit and usage); GET /keys on keygate shows the pool")
		return nil
	}
	infer := inference(rest)
	if infer && len(r.Header["Content-Encoding"]) > 0 && len(relay.Codings(r.Header)) > 0 {
		// keygate reads an inference body for its model (free-model
		// quotas, afford notes) and measures it for the large-request
		// rule; an encoded one would pass as a small body naming no
		// model, and a gzip of a huge prompt could rest an account for
		// being too poor. RFC 7694: a 415 names the codings read.
		w.Header()["X-Keygate-Key"] = noKeyHeader
		w.Header().Set("Accept-Encoding", "identity")
		writeAPIError(w, http.StatusUnsupportedMediaType, "invalid_request_error",
			"request body has a Content-Encoding: keygate reads inference bodies only unencoded; send it without Content-Encoding")
		return nil
	}
	if ex.body, err = readBody(w, r, p.body); err != nil {
		w.Header()["X-Keygate-Key"] = noKeyHeader
		writeBodyError(err, p.body.max, func(code int, msg string) { writeAPIError(w, code, "invalid_request_error", msg) })
		return nil
	}
	ex.call.Strategy = p.strategy
	ex.call.Model, ex.stream = requestOf(ex.body)
	ex.counter = p.tokens
	ex.call.Blind = !infer
	ex.call.Owned = !infer && ownedByAccount(rest)
	// Only an inference call is a free-model request: a ":free" model in
	// the body of GET /v1/models or a made-up path costs upstream's quota
	// nothing, and counting it would use up an account's free requests
	// as keygate counts them.
	ex.call.Free = !ex.call.Blind && freeModel(ex.call.Model)
	if !ex.call.Blind && (ex.call.Free || mayNameFree(ex.body)) && repeatsKey(ex.body, "model") {
		// Upstream calls the last model named, keygate counts the
		// first. First free, then paid: keygate counts a free request
		// of the account, and its count would reach the day's quota and
		// block free calls that upstream still takes. First paid, then
		// free: the account's free requests go uncounted, and keygate
		// sends free calls to an account upstream refuses.
		w.Header()["X-Keygate-Key"] = noKeyHeader
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", `invalid body: "model" is given more than once; name one model`)
		return nil
	}
	if p.relay != nil && p.relay.Breakers().AffordNoted() {
		ex.call.MaxTokens = maxTokensOf(ex.body)
	}
	ex.call.Client = clientOf(r, p.tokensOn)
	return ctx
}

// describesKey reports whether rest (the path after /v1) is OpenRouter's
// GET /key, or its old name /auth/key, which answers about the key that
// calls it: through keygate that is a pool key, and its answer names the
// account by its id, which keygate shows only as a digest.
// The path is read as servers may clean it: repeated slashes as one
// (r.URL.Path has %2F decoded already), ;parameters dropped, a trailing
// slash ignored; otherwise /v1//key or /v1/key;x reached upstream. No
// length bounds the read: a run of slashes or a long ;parameter cleans to
// /key all the same, and a path of more than three segments ends it.
func describesKey(rest string) bool {
	var segs [3]string
	n := 0
	for more := true; more; {
		var s string
		s, rest, more = strings.Cut(rest, "/")
		if i := strings.IndexByte(s, ';'); i >= 0 {
			s = s[:i]
		}
		if s == "" {
			continue
		}
		if n == len(segs) {
			return false
		}
		segs[n] = s
		n++
	}
	switch n {
	case 1:
		return strings.EqualFold(segs[0], "key")
	case 2:
		return strings.EqualFold(segs[0], "auth") && strings.EqualFold(segs[1], "key")
	}
	return false
}

var noKeyHeader = []string{"none"}

// mayNameFree reports whether body may name a free model somewhere: it
// holds `free"` (the end of a string ending ":free"), or an escape (\u),
// which could spell it. Two vectorised searches (about 35 ns for an SDK's
// chat body; ":free" took 67, JSON being full of ':'), so that a paid
// call scans its body's members only when a second "model" could be a
// free one.
func mayNameFree(body []byte) bool {
	return bytes.Contains(body, freeEnd) || bytes.Contains(body, unicodeEscape)
}

var freeEnd, unicodeEscape = []byte(`free"`), []byte(`\u`)

// markNoKey labels a /v1 answer the gateway gives before trying any key
// (auth, overload): the contract puts X-Keygate-Key on every /v1 response.
func markNoKey(w http.ResponseWriter, r *http.Request) {
	if isV1(r) {
		w.Header()["X-Keygate-Key"] = noKeyHeader
	}
}

// proxyError answers a request for which upstream gave no response.
func (p *passthrough) proxyError(w http.ResponseWriter, r *http.Request, ex *exchange, err error) {
	if ex.call.Key != nil {
		w.Header()["X-Keygate-Key"] = []string{ex.call.Key.Label}
	} else {
		w.Header()["X-Keygate-Key"] = noKeyHeader
	}
	var nk *relay.NoKeyError
	switch {
	case errors.As(err, &nk) && nk.Disabled:
		// No Retry-After: no key comes back until an admin enables one.
		writeAPIError(w, http.StatusServiceUnavailable, "keys_unavailable",
			"no upstream API key is available: every key is disabled by an admin (POST /admin/keys/{id}/enable brings one back)")
	case errors.As(err, &nk) && nk.FreeQuota:
		w.Header().Set("Retry-After", retryAfterSeconds(nk.RetryAfter))
		writeAPIError(w, http.StatusServiceUnavailable, "keys_unavailable",
			"no upstream API key can take a free model's call: the free-model requests of every account are used up (paid models are served); retry after "+retryAfterSeconds(nk.RetryAfter)+"s")
	case errors.As(err, &nk):
		w.Header().Set("Retry-After", retryAfterSeconds(nk.RetryAfter))
		writeAPIError(w, http.StatusServiceUnavailable, "keys_unavailable",
			"no upstream API key is available: every key is cooling down or busy with a trial call; retry after "+retryAfterSeconds(nk.RetryAfter)+"s")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		p.log.Debug("client went away", "event", "client_gone", "path", r.URL.Path, "err", err)
		w.WriteHeader(StatusClientClosed)
	case errors.Is(err, relay.ErrUpstreamTimeout):
		writeAPIError(w, http.StatusGatewayTimeout, "upstream_timeout", "upstream did not answer in time")
	default:
		// The text console prints an event's message alone: the cause
		// goes in it, or a wrong OPENROUTER_BASE_URL warns without a why.
		p.log.Warn("upstream request failed: "+err.Error(), "event", "upstream_failed", "path", r.URL.Path, "err", err)
		writeAPIError(w, http.StatusBadGateway, "upstream_error", "upstream request failed")
	}
}

// Errors of readBody.
var (
	errBodyTooLarge = errors.New("request body too large")
	errBodyTimeout  = errors.New("request body not received in time")
)

// bodyLimits bound a request body: its size (MAX_BODY_BYTES) and the time
// it takes to arrive (READ_BODY_TIMEOUT, none when zero).
type bodyLimits struct {
	max     int64
	timeout time.Duration
}

// exactBody is the largest declared length read into a buffer of exactly
// that size; a longer body grows its buffer as its bytes come, so that a
// client cannot make keygate allocate what it never sends.
const exactBody = 1 << 20

// readBody reads the whole request body within l. It returns nil for an
// empty body.
func readBody(w http.ResponseWriter, r *http.Request, l bodyLimits) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > l.max {
		return nil, errBodyTooLarge
	}
	deadline := l.timeout > 0 && setReadDeadline(w, time.Now().Add(l.timeout))
	var body []byte
	var err error
	if r.ContentLength > 0 && r.ContentLength <= exactBody {
		// The server's body reader stops at the declared length.
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, l.max))
	}
	if err != nil {
		// The deadline stays: the server drains what is left of the body
		// before it answers, and must not wait for a client that stalls.
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, errBodyTooLarge
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, errBodyTimeout
		}
		return nil, err
	}
	if deadline {
		setReadDeadline(w, time.Time{})
	}
	if len(body) == 0 {
		return nil, nil
	}
	return body, nil
}

// setReadDeadline sets the read deadline of w's connection, as
// http.ResponseController does but without allocating one; it reports
// whether w supports it.
func setReadDeadline(w http.ResponseWriter, t time.Time) bool {
	for {
		switch x := w.(type) {
		case interface{ SetReadDeadline(time.Time) error }:
			return x.SetReadDeadline(t) == nil
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return false
		}
	}
}

// writeBodyError answers a request whose body could not be read, through
// write, in the route's own error shape.
func writeBodyError(err error, max int64, write func(code int, msg string)) {
	switch {
	case errors.Is(err, errBodyTooLarge):
		write(http.StatusRequestEntityTooLarge, "request body too large: the limit is "+strconv.FormatInt(max, 10)+" bytes (MAX_BODY_BYTES)")
	case errors.Is(err, errBodyTimeout):
		write(http.StatusRequestTimeout, "request body not received in time (READ_BODY_TIMEOUT)")
	default:
		write(http.StatusBadRequest, "reading request body failed")
	}
}
