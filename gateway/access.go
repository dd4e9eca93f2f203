package gateway

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/keygate/keygate/console"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/metrics"
)

// The passthrough writes one access line per request at info, when the
// request is over (a stream: when it ended), as a proxy is expected to:
//
//	↪️ POST /v1/chat/completions openai/gpt-4o-mini → 200 in 0.41s (key #2, 21 tokens)
//
// With LOG_FORMAT=json the same line carries the fields event ("access"),
// method, path, model, status, key_id, attempts, duration_ms and tokens.
// A key shows as its id only, as the pool in force names it (a call that
// ended after a reload renumbered its key, by the new id; one whose key the
// reload removed, as "removed key #1 sk-or-v1-…c0de"); the path (without
// its query, which may hold
// anything) and the model are the client's and are masked like upstream
// text, and the console escapes their control characters.

// maxLoggedModel bounds the model id an access line quotes: it is the
// client's, of any length.
const maxLoggedModel = 128

// Tokens implements TokenCounter: the exchange keeps its answer's token
// count for the access line and passes the usage on, an inference
// answer's only (as Cost: a fetched stored response repeats the tokens of
// the call that made it, counted then).
func (ex *exchange) Tokens(keyID int, model string, prompt, completion int) {
	ex.tokens = prompt + completion
	if ex.call.Blind {
		return
	}
	if kc, ok := ex.counter.(keyedCounter); ok && ex.call.Key != nil {
		kc.TokensOf(ex.call.Key, model, prompt, completion)
		return
	}
	if ex.counter != nil {
		ex.counter.Tokens(keyID, model, prompt, completion)
	}
}

// Cost implements CostCounter: an answer's cost goes on to the counter.
// Only an inference answer is charged: another (a stored response fetched
// by id, as JSON or replayed as its stream) repeats the usage of the call
// that made it, which upstream billed then.
func (ex *exchange) Cost(keyID int, model string, usd float64) {
	if ex.call.Blind {
		return
	}
	if kc, ok := ex.counter.(keyedCounter); ok && ex.call.Key != nil {
		kc.CostOf(ex.call.Key, model, usd)
		return
	}
	if cc, ok := ex.counter.(CostCounter); ok {
		cc.Cost(keyID, model, usd)
	}
}

// NoUsage implements MissCounter: only an inference answer is charged.
func (ex *exchange) NoUsage(keyID int) {
	if ex.call.Blind {
		return
	}
	if kc, ok := ex.counter.(keyedCounter); ok && ex.call.Key != nil {
		kc.NoUsageOf(ex.call.Key)
		return
	}
	if mc, ok := ex.counter.(MissCounter); ok {
		mc.NoUsage(keyID)
	}
}

// keyedCounter is a counter that takes an answer's key itself rather than
// its id: the id of an answer that ends after a reload may name another
// key by then (usageSink).
type keyedCounter interface {
	TokensOf(k *keyring.Key, model string, prompt, completion int)
	CostOf(k *keyring.Key, model string, usd float64)
	NoUsageOf(k *keyring.Key)
}

// finish records the metrics of a /v1 request and writes its access line;
// ex is the passthrough's exchange, nil when the request never reached it
// (turned away, or refused before its body was read).
func (s *Server) finish(sw *statusWriter, r *http.Request, ex **exchange) {
	now := time.Now()
	d := now.Sub(sw.start)
	code := sw.code()
	if m := s.o.Metrics; m != nil {
		m.Request(metrics.RoutePassthrough, code, d)
	}
	s.logAccess(r, code, now, d, *ex)
}

// logAccess writes the access line of a request answered with code after d,
// at now.
func (s *Server) logAccess(r *http.Request, code int, now time.Time, d time.Duration, ex *exchange) {
	log, ctx := s.o.Logger, r.Context()
	if !log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	path := s.redact(r.URL.EscapedPath())
	var model, label, removed string
	keyID := slog.Any("key_id", nil)
	attempts, tokens := 0, 0
	if ex != nil {
		model = s.clip(ex.call.Model, maxLoggedModel)
		if k := ex.call.Key; k != nil {
			// The key as the pool in force names it: a call that ended
			// after a reload is counted under its key's new id, and its
			// old id may name another key now.
			nk := k
			if o := s.o.Observer; o != nil {
				nk, _ = o.inForce(k)
			}
			if nk != nil {
				label = nk.Label
				keyID = slog.Int("key_id", nk.ID)
			} else {
				removed = "s (removed key #" + k.Label + " " + k.Secret.String()
			}
		}
		attempts, tokens = ex.call.Tried.Len(), ex.tokens
	}

	var small [192]byte
	b := append(small[:0], "↪️ "...)
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = append(b, path...)
	if model != "" {
		b = append(b, ' ')
		b = append(b, model...)
	}
	b = append(b, " → "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, " in "...)
	b = strconv.AppendFloat(b, d.Seconds(), 'f', 2, 64)
	switch {
	case removed != "":
		b = append(b, removed...)
	case label == "":
		b = append(b, "s (no key"...)
	default:
		b = append(b, "s (key #"...)
		b = append(b, label...)
	}
	if attempts > 1 {
		b = append(b, ", "...)
		b = strconv.AppendInt(b, int64(attempts), 10)
		b = append(b, " attempts"...)
	}
	if tokens > 0 {
		b = append(b, ", "...)
		b = strconv.AppendInt(b, int64(tokens), 10)
		b = append(b, " tokens"...)
	}
	b = append(b, ')')

	// The record is made here rather than by log.LogAttrs, which asks
	// the runtime for its caller (runtime.Callers, on every request) for
	// a source position no handler of keygate's prints.
	rec := slog.NewRecord(now, slog.LevelInfo, string(b), 0)
	if !s.accessFields {
		// The text console prints the line alone: the fields would
		// only be copied into the record and scanned for keys.
		rec.AddAttrs(slog.String(console.EventKey, "access"))
		_ = log.Handler().Handle(ctx, rec)
		return
	}
	attrs := [...]slog.Attr{
		slog.String(console.EventKey, "access"),
		slog.String("method", r.Method),
		slog.String("path", path),
		slog.String("model", model),
		slog.Int("status", code),
		keyID,
		slog.Int("attempts", attempts),
		slog.Int64("duration_ms", d.Milliseconds()),
		slog.Int("tokens", tokens),
	}
	rec.AddAttrs(attrs[:]...)
	_ = log.Handler().Handle(ctx, rec)
}

// clip masks the keys in text, then cuts it to at most n bytes (shorten):
// in that order, as a key cut in two is no longer one the redactor finds,
// and its first part would be shown.
func (s *Server) clip(text string, n int) string { return shorten(s.redact(text), n) }

// shorten cuts s to at most n bytes of whole UTF-8 characters, marking the
// cut with an ellipsis.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
