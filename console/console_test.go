package console_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/console"
	"github.com/keygate/keygate/secret"
)

const rawKey = "sk-or-v1-0123456789abcdef0123456789abcdefc0de"

// writes records every Write call, and fails the test if two overlap.
type writes struct {
	t      testing.TB
	inside atomic.Bool
	mu     sync.Mutex
	calls  []string
}

func (w *writes) Write(p []byte) (int, error) {
	if w.inside.Swap(true) {
		w.t.Error("concurrent Write calls")
	}
	defer w.inside.Store(false)
	w.mu.Lock()
	w.calls = append(w.calls, string(p))
	w.mu.Unlock()
	return len(p), nil
}

func (w *writes) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.calls...)
}

func TestText(t *testing.T) {
	key := secret.New(rawKey)
	at := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		log  func(l *slog.Logger)
		want string
	}{
		{"event prints its message only", func(l *slog.Logger) {
			l.Info("✅ openai/gpt-3.5-turbo completed in 3.45s", "event", "model_done",
				"model", "openai/gpt-3.5-turbo", "key", key, "duration_ms", 3450)
		}, "✅ openai/gpt-3.5-turbo completed in 3.45s\n"},
		{"event attr not first", func(l *slog.Logger) {
			l.Info("🧊 API Key #3 cooling down for 30s (429)", "key_id", 3, "event", "key_cooldown")
		}, "🧊 API Key #3 cooling down for 30s (429)\n"},
		{"event from With", func(l *slog.Logger) {
			l.With("event", "run").WithGroup("g").Info("✨ done", "a", 1)
		}, "✨ done\n"},
		{"plain message", func(l *slog.Logger) { l.Info("listening") }, "listening\n"},
		{"control characters escaped", func(l *slog.Logger) {
			l.Info("⏳ Calling a\n✅ forged\x1b[31m\rx...", "event", "model_call")
		}, `⏳ Calling a\n✅ forged\x1b[31m\rx...` + "\n"},
		{"separators and format characters escaped", func(l *slog.Logger) {
			l.Info("⏳ Calling a\u2028✅ forged \u202egnp.\u200bx\u0085y\u00a0z", "event", "model_call")
		}, `⏳ Calling a\u2028✅ forged \u202egnp.\u200bx\u0085y\u00a0z` + "\n"},
		{"unprintable attr values quoted", func(l *slog.Logger) {
			l.Info("m", "model", "a\u202eb", "sep", "c\u2028d", "nel", "e\u0085f")
		}, `m model="a\u202eb" sep="c\u2028d" nel="e\u0085f"` + "\n"},
		{"attrs", func(l *slog.Logger) {
			l.Info("upstream request failed", "path", "/v1/chat", "status", 502, "ok", false,
				"ratio", 0.5, "took", 1500*time.Millisecond, "at", at, "err", errors.New("dial tcp: refused"))
		}, "upstream request failed path=/v1/chat status=502 ok=false ratio=0.5 took=1.5s " +
			"at=2026-01-02T15:04:05Z err=\"dial tcp: refused\"\n"},
		{"quoting", func(l *slog.Logger) {
			l.Info("m", "empty", "", "eq", "a=b", "quote", `say "hi"`, "tab", "a\tb", "nl", "a\nb",
				"plain", "naïve-ünïcode", "slash", "x/y:z")
		}, `m empty="" eq="a=b" quote="say \"hi\"" tab="a\tb" nl="a\nb" plain=naïve-ünïcode slash=x/y:z` + "\n"},
		{"any as JSON", func(l *slog.Logger) {
			l.Info("m", "models", []string{"a", "b"}, "n", map[string]int{"x": 1})
		}, `m models="[\"a\",\"b\"]" n="{\"x\":1}"` + "\n"},
		{"secret masked", func(l *slog.Logger) {
			l.With("k", key).Info("m", "key", key, slog.Group("g", "key", key), "keys", []secret.Key{key})
		}, "m k=sk-or-v1-…c0de key=sk-or-v1-…c0de g.key=sk-or-v1-…c0de keys=\"[\\\"sk-or-v1-…c0de\\\"]\"\n"},
		{"With", func(l *slog.Logger) { l.With("req", 7).With("route", "run").Info("m", "b", 2) },
			"m req=7 route=run b=2\n"},
		{"WithGroup", func(l *slog.Logger) { l.WithGroup("http").Info("m", "code", 200) },
			"m http.code=200\n"},
		{"With before WithGroup", func(l *slog.Logger) { l.With("a", 1).WithGroup("g").Info("m", "b", 2) },
			"m a=1 g.b=2\n"},
		{"With after WithGroup", func(l *slog.Logger) { l.WithGroup("g").With("a", 1).Info("m", "b", 2) },
			"m g.a=1 g.b=2\n"},
		{"nested groups", func(l *slog.Logger) {
			l.WithGroup("a").With("x", 0).WithGroup("b").Info("m", slog.Group("c", "d", 1))
		}, "m a.x=0 a.b.c.d=1\n"},
		{"inline and empty groups", func(l *slog.Logger) {
			l.WithGroup("g").Info("m", slog.Group("", "c", 3), slog.Group("none"), slog.Attr{})
		}, "m g.c=3\n"},
		{"info has no level tag", func(l *slog.Logger) { l.Info("m", "a", 1) }, "m a=1\n"},
		{"debug has no level tag", func(l *slog.Logger) { l.Debug("m") }, "m\n"},
		{"warn", func(l *slog.Logger) { l.Warn("⚠️  GATEWAY_API_KEYS is not set", "n", 1) },
			"WARN ⚠️  GATEWAY_API_KEYS is not set n=1\n"},
		{"error", func(l *slog.Logger) { l.Error("boom", "err", errors.New("x")) }, "ERROR boom err=x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &writes{t: t}
			tt.log(console.New(w, "text", slog.LevelDebug))
			calls := w.all()
			if len(calls) != 1 {
				t.Fatalf("%d Write calls %q, want 1", len(calls), calls)
			}
			if calls[0] != tt.want {
				t.Errorf("got  %q\nwant %q", calls[0], tt.want)
			}
			if strings.Contains(calls[0], rawKey) {
				t.Errorf("raw key printed: %q", calls[0])
			}
		})
	}
}

func TestWithSiblingsDoNotShare(t *testing.T) {
	var buf bytes.Buffer
	base := console.New(&buf, "text", nil).With("a", 1)
	x, y := base.With("b", 2), base.With("c", 3)
	x.Info("x")
	y.Info("y")
	base.Info("base")
	if want := "x a=1 b=2\ny a=1 c=3\nbase a=1\n"; buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

func TestLevel(t *testing.T) {
	var dyn slog.LevelVar
	dyn.Set(slog.LevelError)
	tests := []struct {
		name  string
		level slog.Leveler
		want  string
	}{
		{"nil means info", nil, "i\nWARN w\nERROR e\n"},
		{"debug", slog.LevelDebug, "d\ni\nWARN w\nERROR e\n"},
		{"warn", slog.LevelWarn, "WARN w\nERROR e\n"},
		{"LevelVar", &dyn, "ERROR e\n"},
	}
	for _, tt := range tests {
		for _, format := range []string{"text", "json"} {
			t.Run(tt.name+"/"+format, func(t *testing.T) {
				var buf bytes.Buffer
				l := console.New(&buf, format, tt.level)
				l.Debug("d")
				l.Info("i")
				l.Warn("w")
				l.Error("e")
				if format == "text" {
					if buf.String() != tt.want {
						t.Errorf("got %q, want %q", buf.String(), tt.want)
					}
					return
				}
				if got, want := strings.Count(buf.String(), "\n"), strings.Count(tt.want, "\n"); got != want {
					t.Errorf("%d JSON lines, want %d:\n%s", got, want, buf.String())
				}
			})
		}
	}
	t.Run("LevelVar changed later", func(t *testing.T) {
		var lv slog.LevelVar
		var buf bytes.Buffer
		l := console.New(&buf, "text", &lv)
		l.Debug("hidden")
		lv.Set(slog.LevelDebug)
		l.Debug("shown")
		if buf.String() != "shown\n" {
			t.Errorf("got %q", buf.String())
		}
	})
}

func TestOneWritePerRecord(t *testing.T) {
	w := &writes{t: t}
	l := console.New(w, "text", slog.LevelInfo)
	long := strings.Repeat("x", 1000)
	const goroutines, each = 8, 50
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			lg := l.With("g", g) // derived handlers share the writer's lock
			for i := range each {
				if i%2 == 0 {
					lg.Info("🔑 Using API Key #1", "event", "key_selected", "i", i)
				} else {
					lg.Warn(long, "i", i, "long", long)
				}
			}
		})
	}
	wg.Wait()
	calls := w.all()
	if len(calls) != goroutines*each {
		t.Fatalf("%d Write calls for %d records", len(calls), goroutines*each)
	}
	for _, c := range calls {
		if strings.Count(c, "\n") != 1 || !strings.HasSuffix(c, "\n") {
			t.Fatalf("Write %q is not one whole line", c)
		}
	}
}

func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	l := console.New(&buf, "json", slog.LevelInfo)
	l.Info("✅ m completed in 3.45s", "event", "model_done", "model", "m", "key_id", 2,
		"key", secret.New(rawKey), "duration_ms", 3450)
	l.With("route", "run").WithGroup("http").Warn("upstream request failed", "status", 502)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	if strings.Contains(buf.String(), rawKey) {
		t.Errorf("raw key in JSON log: %s", buf.String())
	}
	tests := []struct {
		line int
		want map[string]any
	}{
		{0, map[string]any{"level": "INFO", "msg": "✅ m completed in 3.45s", "event": "model_done",
			"model": "m", "key_id": 2.0, "key": "sk-or-v1-…c0de", "duration_ms": 3450.0}},
		{1, map[string]any{"level": "WARN", "msg": "upstream request failed", "route": "run",
			"http": map[string]any{"status": 502.0}}},
	}
	for _, tt := range tests {
		var got map[string]any
		if err := json.Unmarshal([]byte(lines[tt.line]), &got); err != nil {
			t.Fatalf("line %d %q: %v", tt.line, lines[tt.line], err)
		}
		if _, ok := got["time"]; !ok {
			t.Errorf("line %d has no time", tt.line)
		}
		for k, want := range tt.want {
			g, _ := json.Marshal(got[k])
			w, _ := json.Marshal(want)
			if !bytes.Equal(g, w) {
				t.Errorf("line %d: %s = %s, want %s", tt.line, k, g, w)
			}
		}
	}
}
