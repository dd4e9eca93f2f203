package gateway

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// maxUsageScan bounds how much of a plain JSON answer is kept to read its
// usage; larger answers are passed on without counting tokens.
const maxUsageScan = 256 << 10

// TokenCounter receives the token usage found in an upstream answer.
type TokenCounter interface {
	Tokens(keyID int, model string, prompt, completion int)
}

// CostCounter is a TokenCounter that also receives what an answer cost
// (OpenRouter's usage.cost, in USD credits).
type CostCounter interface {
	Cost(keyID int, model string, usd float64)
}

// usageTap watches an answer pass to the client and counts its tokens when
// it ends: the usage object of a JSON answer, or of the last SSE event that
// carries one. It never holds data back from the client; parsing happens on
// Close, after the body was forwarded.
type usageTap struct {
	rc     io.ReadCloser
	stream bool
	buf    *bytes.Buffer // JSON: the answer so far; SSE: the current line
	last   []byte        // SSE: the last data line with a usage field
	eof    bool
	over   bool
	// longLine: SSE, the current line outgrew maxUsageScan and is skipped
	// up to its end.
	longLine bool
	counter  TokenCounter
	keyID    int
	model    string
}

var tapBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// tapUsage wraps resp.Body so that counter gets the answer's usage, if any.
func tapUsage(resp *http.Response, counter TokenCounter, keyID int, model string) {
	if resp.StatusCode < 200 || resp.StatusCode > 299 || resp.Body == nil || resp.Body == http.NoBody {
		return
	}
	var stream bool
	switch ct := mediaType(resp.Header.Get("Content-Type")); {
	case strings.EqualFold(ct, "text/event-stream"):
		stream = true
	case strings.EqualFold(ct, "application/json"):
		if resp.ContentLength > maxUsageScan {
			return
		}
	default:
		return
	}
	// Answers reach the tap unencoded (normalizeEncoding): it never
	// decodes, so it holds at most maxUsageScan bytes of any answer.
	if _, ok := resp.Header["Content-Encoding"]; ok {
		return
	}
	buf := tapBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	resp.Body = &usageTap{rc: resp.Body, stream: stream, buf: buf, counter: counter, keyID: keyID, model: model}
}

func (t *usageTap) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if n > 0 && !t.over {
		if t.stream {
			t.scanLines(p[:n])
		} else if t.buf.Len()+n > maxUsageScan {
			t.over = true
		} else {
			t.buf.Write(p[:n])
		}
	}
	if err == io.EOF {
		t.eof = true
	}
	return n, err
}

// scanLines keeps the last SSE data line that mentions usage. A line
// longer than maxUsageScan is no usage chunk and is skipped whole, however
// it was split between reads.
func (t *usageTap) scanLines(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if t.longLine || t.buf.Len()+len(p) > maxUsageScan {
				t.buf.Reset()
				t.longLine = true
				return
			}
			t.buf.Write(p)
			return
		}
		line := p[:i]
		switch {
		case t.longLine || t.buf.Len()+len(line) > maxUsageScan:
			line = nil
		case t.buf.Len() > 0:
			t.buf.Write(line)
			line = t.buf.Bytes()
		}
		if bytes.HasPrefix(line, []byte("data:")) && bytes.Contains(line, []byte(`"usage"`)) {
			t.last = append(t.last[:0], line...)
		}
		t.buf.Reset()
		t.longLine = false
		p = p[i+1:]
	}
}

func (t *usageTap) Close() error {
	err := t.rc.Close()
	if t.buf == nil {
		return err
	}
	if t.eof && !t.over {
		var doc []byte
		if t.stream {
			doc = bytes.TrimSpace(bytes.TrimPrefix(t.last, []byte("data:")))
		} else {
			doc = t.buf.Bytes()
		}
		if raw := topLevel(doc, "usage"); len(raw) > 0 && raw[0] == '{' {
			prompt, ok1 := tokenCount(raw, "prompt_tokens")
			completion, ok2 := tokenCount(raw, "completion_tokens")
			if ok1 && ok2 && (prompt > 0 || completion > 0) {
				t.counter.Tokens(t.keyID, t.model, prompt, completion)
			}
			if cc, ok := t.counter.(CostCounter); ok {
				if usd, ok := usageCost(raw); ok {
					cc.Cost(t.keyID, t.model, usd)
				}
			}
		}
	}
	if t.buf.Cap() <= maxUsageScan {
		tapBuffers.Put(t.buf)
	}
	t.buf = nil
	return err
}

// mediaType is a Content-Type without its parameters, as sent (compare it
// folded). mime.ParseMediaType would allocate a map on every answer.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.TrimSpace(ct)
}

// tokenCount reads the integer field name of a JSON usage object without
// decoding it; an absent or null field is 0. ok is false when the value is
// not a count (a non-negative integer).
func tokenCount(usage []byte, name string) (n int, ok bool) {
	raw := topLevel(usage, name)
	if raw == nil || string(raw) == "null" {
		return 0, true
	}
	if len(raw) == 0 || len(raw) > 15 {
		return 0, false
	}
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// usageCost reads a usage object's cost, a non-negative number.
func usageCost(usage []byte) (float64, bool) {
	raw := topLevel(usage, "cost")
	if len(raw) == 0 || len(raw) > 32 || raw[0] == '-' {
		return 0, false
	}
	usd, err := strconv.ParseFloat(string(raw), 64)
	return usd, err == nil && usd > 0
}
