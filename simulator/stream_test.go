package simulator

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// streamOf reads a whole stream and decodes its chunks; it checks the
// framing: content chunks, one finish chunk, then one usage chunk that
// repeats finish_reason (unless noUsage), then [DONE]. chunks holds the
// content chunks.
func streamOf(t *testing.T, h *harness, model string, hdr map[string]string) (chunks []oaCompletion, usage *oaCompletion, body []byte) {
	t.Helper()
	resp := h.request(context.Background(), "POST", "/chat/completions", keyOK, chatBody(model, "Say hi", true), hdr)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, err %v: %s", resp.StatusCode, err, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	if resp.Header.Get("Content-Length") != "" || resp.ContentLength != -1 {
		t.Errorf("stream with a length: %d", resp.ContentLength)
	}
	if got := resp.Trailer.Get(HeaderBodySHA256); got != sha(body) {
		t.Errorf("SHA-256 trailer %q, body's %q", got, sha(body))
	}
	evs := parseEvents(t, body)
	if len(evs) < 2 || evs[len(evs)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %q", evs)
	}
	for _, ev := range evs[:len(evs)-1] {
		var c oaCompletion
		if err := json.Unmarshal([]byte(ev), &c); err != nil {
			t.Fatalf("event %q: %v", ev, err)
		}
		if c.Object != "chat.completion.chunk" || c.Model != model || c.Created != fixedNow.Unix() {
			t.Errorf("chunk head: %s", ev)
		}
		if c.Usage != nil {
			if usage != nil {
				t.Errorf("two usage chunks")
			}
			if len(c.Choices) != 1 || c.Choices[0].FinishReason == nil || *c.Choices[0].FinishReason != "stop" {
				t.Errorf("usage chunk does not repeat finish_reason: %s", ev)
			}
			usage = &c
			continue
		}
		if usage != nil {
			t.Errorf("content after the usage chunk")
		}
		chunks = append(chunks, c)
	}
	if len(chunks) < 2 {
		t.Fatalf("%d chunks with choices", len(chunks))
	}
	fin := chunks[len(chunks)-1].Choices[0]
	if fin.FinishReason == nil || *fin.FinishReason != "stop" || fin.Delta.Content != "" || fin.Delta.Role != "" {
		t.Errorf("finish chunk %+v", fin)
	}
	chunks = chunks[:len(chunks)-1]
	return chunks, usage, body
}

func TestStream(t *testing.T) {
	t.Parallel()
	h := startSim(t, testOptions())
	const want = `Hello from %s: you said "Say hi"`
	tests := []struct {
		name, model string
		hdr         map[string]string
		chunks      int
		usage       bool
	}{
		{"default", "openai/gpt-4o", nil, defaultChunks, true},
		{"chunks=1", "sim/chunks=1", nil, 1, true},
		{"chunks=7 by header", "m", map[string]string{HeaderFault: "chunks=7"}, 7, true},
		{"more chunks than runes", "sim/chunks=100", nil, 100, true},
		{"noUsage", "sim/noUsage,chunks=2", nil, 2, false},
		{"chunkdelay", "sim/chunkdelay=1ms", nil, defaultChunks, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks, usage, _ := streamOf(t, h, tt.model, tt.hdr)
			if len(chunks) != tt.chunks {
				t.Fatalf("%d chunks, want %d", len(chunks), tt.chunks)
			}
			var text strings.Builder
			id := chunks[0].ID
			for i, c := range chunks {
				ch := c.Choices[0]
				text.WriteString(ch.Delta.Content)
				if (ch.Delta.Role == "assistant") != (i == 0) || c.ID != id {
					t.Errorf("chunk %d: role %q id %q", i, ch.Delta.Role, c.ID)
				}
				if ch.FinishReason != nil {
					t.Errorf("chunk %d: finish_reason %v", i, *ch.FinishReason)
				}
			}
			if got := text.String(); got != strings.Replace(want, "%s", tt.model, 1) {
				t.Errorf("content %q", got)
			}
			if (usage != nil) != tt.usage {
				t.Fatalf("usage chunk present %v, want %v", usage != nil, tt.usage)
			}
			if usage != nil && (usage.Usage == nil || usage.Usage.CompletionTokens != 7 || usage.ID != id) {
				t.Errorf("usage chunk %+v", usage)
			}
		})
	}
	t.Run("chunkdelay spaces the chunks", func(t *testing.T) {
		// On a synctest bubble's fake clock: the first chunk at once, the
		// next one a gap later, the last chunk and the tail a gap after
		// that, and nothing in between.
		synctest.Test(t, func(t *testing.T) {
			s := New(testOptions())
			defer s.Close()
			const gap = 30 * time.Millisecond
			c := serveInBubble(t, s, keyOK, "sim/chunks=3,chunkdelay=30ms", true, nil)
			for _, step := range []struct {
				at     time.Duration
				events int
			}{{0, 1}, {gap - time.Nanosecond, 1}, {gap, 2}, {2*gap - time.Nanosecond, 2}} {
				c.at(step.at)
				if n := c.events(); n != step.events || c.finished() {
					t.Fatalf("at %v: %d events (finished %v), want %d", step.at, n, c.finished(), step.events)
				}
			}
			c.at(2 * gap)
			resp, body := c.result(t)
			if resp.StatusCode != 200 || !strings.HasSuffix(body, "data: [DONE]\n\n") {
				t.Fatalf("at %v: status %d, body %q; want the whole stream", 2*gap, resp.StatusCode, body)
			}
			if evs := parseEvents(t, []byte(body)); len(evs) != 6 { // 3 chunks, finish, usage, [DONE]
				t.Fatalf("%d events, want 6: %q", len(evs), evs)
			}
			if got := resp.Trailer.Get(HeaderBodySHA256); got != sha([]byte(body)) {
				t.Fatalf("SHA-256 trailer %q, body's %q", got, sha([]byte(body)))
			}
		})
	})
	t.Run("big", func(t *testing.T) {
		for _, size := range []int{100 << 10, 3<<20 + 7} {
			chunks, usage, body := streamOf(t, h, "sim/big="+strconv.Itoa(size), nil)
			if len(body) != size || len(chunks) != defaultChunks || usage == nil {
				t.Errorf("big=%d: %d bytes, %d chunks", size, len(body), len(chunks))
			}
		}
	})
	t.Run("badjson", func(t *testing.T) {
		r := h.chat(keyOK, "sim/badjson", "hi", true, nil)
		evs := parseEvents(t, r.body)
		if r.status != 200 || len(evs) < 2 || json.Valid([]byte(evs[0])) || !json.Valid([]byte(evs[1])) {
			t.Errorf("status %d events %q", r.status, evs)
		}
	})
}

// TestStreamIsFlushed reads the first event while the server waits an hour
// before the second: it arrives only if each chunk is flushed, and the
// stream is then still open (the handler is in flight). No timing is
// asserted; closing the body must end the handler.
func TestStreamIsFlushed(t *testing.T) {
	t.Parallel()
	for _, mk := range []struct {
		name  string
		mount func(*testing.T, Options) *harness
	}{{"Start", startSim}, {"New", mountSim}} {
		t.Run(mk.name, func(t *testing.T) {
			h := mk.mount(t, testOptions())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			resp := h.request(ctx, "POST", "/chat/completions", keyOK, chatBody("sim/chunkdelay=1h", "hi", true), nil)
			defer resp.Body.Close()
			if resp.Header.Get("Trailer") != "" || resp.Trailer == nil {
				t.Errorf("trailer not declared: %v", resp.Trailer)
			}
			ev, err := readEvent(bufio.NewReader(resp.Body))
			if err != nil {
				t.Fatalf("first event: %v", err)
			}
			var c oaCompletion
			full := `Hello from sim/chunkdelay=1h: you said "hi"`
			if err := json.Unmarshal([]byte(ev), &c); err != nil || len(c.Choices) != 1 ||
				c.Choices[0].Delta.Content == "" || !strings.HasPrefix(full, c.Choices[0].Delta.Content) {
				t.Fatalf("first event %q: %v", ev, err)
			}
			if n := h.s.Stats().InFlight; n != 1 {
				t.Fatalf("in flight %d: the stream should still be open", n)
			}
			resp.Body.Close()
			eventually(t, "handler ends when the client goes away", func() bool { return h.s.Stats().InFlight == 0 })
		})
	}
}

func TestBrokenConnections(t *testing.T) {
	t.Parallel()
	h := startSim(t, testOptions())
	tests := []struct {
		name, model string
		stream      bool
		eof         bool // the error must be io.ErrUnexpectedEOF
	}{
		{"reset", "sim/reset", false, false},
		{"reset stream", "sim/reset", true, false},
		{"reset big", "sim/reset,big=4MB", false, false},
		{"truncate", "sim/truncate", false, true},
		{"truncate stream", "sim/truncate,chunkdelay=1h", true, true},
		{"truncate error", "sim/truncate,status=500", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.request(context.Background(), "POST", "/chat/completions", keyOK, chatBody(tt.model, "hi", tt.stream), nil)
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			if tt.stream {
				ev, err := readEvent(br)
				if err != nil || !json.Valid([]byte(ev)) {
					t.Fatalf("first event %q before the break: %v", ev, err)
				}
			}
			_, err := io.ReadAll(br)
			if err == nil {
				t.Fatal("reading the body should fail")
			}
			if tt.eof && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %v, want unexpected EOF", err)
			}
			t.Logf("client error: %v", err)
			if tt.eof && resp.ContentLength <= 0 {
				t.Errorf("truncate should declare a length, got %d", resp.ContentLength)
			}
		})
	}
	t.Run("server still fine", func(t *testing.T) {
		if r := h.chat(keyOK, "m", "hi", false, nil); r.status != http.StatusOK {
			t.Errorf("status %d", r.status)
		}
	})
}
