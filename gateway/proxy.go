package gateway

import (
	"context"
	"errors"
	"io"
	"iter"
	"maps"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"
	"sync"
)

// The passthrough's proxy core. It does what httputil.ReverseProxy did for
// keygate, the way ReverseProxy does it (hop-by-hop headers dropped both
// ways, 1xx answers passed on, SSE and unsized answers flushed at each
// write, trailers kept, http.ErrAbortHandler when an answer breaks off),
// with what keygate does not need left out: ReverseProxy copies the
// request three times, clones its header and URL, and canonicalizes every
// header name it deletes, on every call. Here the outbound request is one
// shallow copy of the client's, with a header map that shares the client's
// values, and the answer's headers go to the client without being copied
// value by value.

// hopHeaders are the hop-by-hop headers (RFC 9110, 7.6.1), in canonical
// form, that never cross the proxy in either direction.
var hopHeaders = [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// forwarded are headers ReverseProxy's Rewrite mode strips but that the
// client sent itself and so are passed on, even when Connection names them.
var forwarded = [...]string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// connectionNames yields, canonical, the header names h's Connection
// headers list: hop-by-hop too, for this connection only.
func connectionNames(h http.Header) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, f := range h["Connection"] {
			for name := range strings.SplitSeq(f, ",") {
				if name = textproto.TrimString(name); name != "" && !yield(http.CanonicalHeaderKey(name)) {
					return
				}
			}
		}
	}
}

// noUserAgent keeps Go's transport from sending its own User-Agent when
// the client sent none (shared, read-only).
var noUserAgent = []string{""}

// outboundHeader is the header of the upstream request made of in: every
// client header except the hop-by-hop ones (and those Connection names),
// those shaped like credentials, Accept-Encoding (answers come back
// unencoded, so that every byte of them can be checked for keys on its way
// to the client; normalizeEncoding decodes what upstream encodes all the
// same) and Expect (the body is in memory and sent whole: a 100-continue
// round trip would only delay it). The values are in's own slices: nothing
// downstream changes a value in place (the relay sets Authorization anew).
func outboundHeader(in http.Header) http.Header {
	out := make(http.Header, len(in)+1)
	for name, vs := range in {
		if slices.Contains(hopHeaders[:], name) || credentialShaped(name) || name == "Accept-Encoding" || name == "Expect" {
			continue
		}
		out[name] = vs
	}
	for name := range connectionNames(in) {
		if !slices.Contains(forwarded[:], name) {
			delete(out, name)
		}
	}
	if _, ok := out["User-Agent"]; !ok {
		out["User-Agent"] = noUserAgent
	}
	return out
}

// removeHopByHop drops an answer's hop-by-hop headers, and those its
// Connection names.
func removeHopByHop(h http.Header) {
	for name := range connectionNames(h) {
		delete(h, name)
	}
	for _, name := range hopHeaders {
		delete(h, name)
	}
}

// informational passes upstream's 1xx answers (103 Early Hints) to the
// client, as a proxy must, until the final answer is in. The transport
// calls got from the request's trace on its connection's read loop, which
// over HTTP/2 reads for every stream of the connection: got only queues
// the 1xx, and a goroutine of the request's writes it, so that a client
// slow to take it holds up its own answer alone, not every call sharing
// the upstream connection (helper-61). end waits for that writer.
type informational struct {
	mu   sync.Mutex
	w    http.ResponseWriter
	done bool
	// queue holds the 1xx answers not written yet; idle, when not nil, is
	// closed once the writer (running while writing) is gone.
	queue   []interim
	writing bool
	idle    chan struct{}
	// trace is what the request's context gives httptrace (exchangeCtx).
	trace httptrace.ClientTrace
}

// interim is one 1xx answer: its status and its own headers.
type interim struct {
	code   int
	header http.Header
}

// start readies i for one request answered on w.
func (i *informational) start(w http.ResponseWriter) {
	i.w, i.done, i.queue, i.writing, i.idle = w, false, nil, false, nil
	if i.trace.Got1xxResponse == nil {
		i.trace.Got1xxResponse = i.got
	}
}

func (i *informational) got(code int, header textproto.MIMEHeader) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.done {
		// The final answer is being written: its header map is not
		// the 1xx's to change.
		return nil
	}
	i.queue = append(i.queue, interim{code: code, header: http.Header(header).Clone()})
	if !i.writing {
		i.writing, i.idle = true, make(chan struct{})
		go i.write(i.idle)
	}
	return nil
}

// write writes the queued 1xx answers in order, then closes idle.
func (i *informational) write(idle chan struct{}) {
	defer close(idle)
	for {
		i.mu.Lock()
		if len(i.queue) == 0 {
			i.writing = false
			i.mu.Unlock()
			return
		}
		m := i.queue[0]
		i.queue = i.queue[1:]
		i.mu.Unlock()
		// The 1xx goes out with the headers set so far and its own;
		// then the header map is as it was (ReverseProxy clears it,
		// which loses what was set before the call, CORS headers among
		// them). Nothing else writes to w until end has returned.
		h := i.w.Header()
		before := h.Clone()
		addHeader(h, m.header)
		i.w.WriteHeader(m.code)
		clear(h)
		maps.Copy(h, before)
	}
}

// end stops passing 1xx answers on, and waits for those queued to be
// written: the final answer's header goes out after them.
func (i *informational) end() {
	i.mu.Lock()
	i.done = true
	idle := i.idle
	i.mu.Unlock()
	if idle != nil {
		<-idle
	}
}

// traceKey is httptrace's context key for a request's ClientTrace, which
// exchangeCtx answers with its own trace: wrapping the context with
// httptrace.WithClientTrace would be one more allocation on every call.
// The key's type is unexported, so it is learnt once from the lookup
// httptrace makes.
var traceKey = func() any {
	var p keyProbe
	httptrace.ContextClientTrace(&p)
	return p.key
}()

// keyProbe is a context that remembers the key it was asked for.
type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(key any) any {
	p.key = key
	return nil
}

// forward sends the exchange in xc upstream through the relay and copies
// the answer to w; when no answer came, proxyError answers.
func (p *passthrough) forward(w http.ResponseWriter, r *http.Request, xc *exchangeCtx) {
	ex := &xc.ex
	out := r.WithContext(xc)
	out.URL = &ex.target
	out.Host = ""
	out.RequestURI = ""
	out.Header = outboundHeader(r.Header)
	out.Close = false
	out.Trailer = nil
	ex.info.start(w)
	resp, err := p.relay.Do(out, ex.body, &ex.call)
	ex.info.end()
	if err != nil {
		p.proxyError(w, r, ex, err)
		return
	}
	p.inspect(resp, ex)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The upgrade headers were not sent, and the relay cannot carry
		// a switched protocol (its body is read-only).
		_ = resp.Body.Close()
		p.proxyError(w, r, ex, errors.New("upstream switched protocols unasked"))
		return
	}
	h := w.Header()
	answerHead(h, resp, resp.Trailer)
	announced := len(resp.Trailer)
	w.WriteHeader(resp.StatusCode)
	// Server-sent events, and answers of unknown length (which may be
	// streams), go out as they come.
	flush := eventStream(resp.Header) || resp.ContentLength == -1
	if flush {
		_ = flushWriter(w)
	}
	pool := p.buffers
	if ex.stream {
		pool = p.streamBuffers
	}
	buf := pool.Get()
	err = p.copyBody(w, resp.Body, buf, flush)
	pool.Put(buf)
	if err != nil {
		_ = resp.Body.Close()
		if r.Context().Value(http.ServerContextKey) == nil {
			// Not under a server, which would recover the abort (a
			// handler called directly, as in-process benchmarks do).
			p.log.Debug("answer cut off while copied", "event", "answer_cut", "path", r.URL.Path, "err", err)
			return
		}
		// All that is left is to abort: the client sees the answer cut.
		panic(http.ErrAbortHandler)
	}
	_ = resp.Body.Close() // now, for resp.Trailer
	if len(resp.Trailer) == 0 {
		return
	}
	// Trailers make the answer chunked: a short body would otherwise get
	// a Content-Length and no trailers.
	_ = flushWriter(w)
	if len(resp.Trailer) == announced {
		addHeader(h, resp.Trailer)
		return
	}
	for name, vs := range resp.Trailer {
		for _, v := range vs {
			h.Add(http.TrailerPrefix+name, v)
		}
	}
}

// answerHead puts resp's headers into h as the client gets them: without
// the hop-by-hop ones, and with the trailers in trailer announced (the
// transport gives them in resp.Trailer, not in a Trailer header).
func answerHead(h http.Header, resp *http.Response, trailer http.Header) {
	removeHopByHop(resp.Header)
	if _, ok := h["Access-Control-Allow-Origin"]; ok {
		// keygate answered the browser's CORS itself (CORS_ORIGINS):
		// upstream's own (OpenRouter allows "*") would give it two
		// values, and a browser refuses the answer then.
		for _, name := range corsHeaders {
			delete(resp.Header, name)
		}
	}
	addHeader(h, resp.Header)
	if len(trailer) > 0 {
		names := make([]string, 0, len(trailer))
		for name := range trailer {
			names = append(names, name)
		}
		h.Add("Trailer", strings.Join(names, ", "))
	}
}

// inspect does to an upstream answer what keygate does to every one before
// the client gets it: decodes it, masks pool keys in an error answer, taps
// a successful one for its token usage, and counts a free-model call
// against its account's quota.
func (p *passthrough) inspect(resp *http.Response, ex *exchange) {
	normalizeEncoding(resp)
	redactErrorBody(resp, p.redactor)
	tapUsageIn(&ex.tap, resp, ex, ex.call.Key.ID, ex.call.Model)
	if ex.heldTap != nil {
		resumeTap(resp, ex.heldTap)
		ex.heldTap = nil
	}
	if ex.call.Free && p.spender != nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		p.spender.UseFree(ex.call.Key)
	}
}

// copyBody copies an answer's body to w through buf, flushing after each
// write when flush is set. A read error is logged here (a cancelled call
// is not news); a read or write error ends the copy.
func (p *passthrough) copyBody(w http.ResponseWriter, body io.Reader, buf []byte, flush bool) error {
	for {
		n, rerr := body.Read(buf)
		if rerr != nil && rerr != io.EOF && !errors.Is(rerr, context.Canceled) {
			p.log.Debug("upstream body read failed", "event", "upstream_read_failed", "err", rerr)
		}
		if n > 0 {
			m, werr := w.Write(buf[:n])
			if werr != nil {
				return werr
			}
			if m != n {
				return io.ErrShortWrite
			}
			if flush {
				// As ReverseProxy: a client gone shows in the next write.
				_ = flushWriter(w)
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// corsHeaders are the answer headers of CORS, which keygate sets itself
// for an allowed origin.
var corsHeaders = [...]string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
	"Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age",
	"Access-Control-Expose-Headers"}

// addHeader adds src's values to dst. A name dst does not have yet takes
// src's slice itself: src is an answer's header, used once, and nothing
// changes a value in place (the redactor replaces a slice it changes).
func addHeader(dst, src http.Header) {
	for name, vs := range src {
		if have, ok := dst[name]; ok {
			// A copy: have may be a slice shared with others.
			dst[name] = append(have[:len(have):len(have)], vs...)
			continue
		}
		dst[name] = vs
	}
}
