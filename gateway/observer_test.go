package gateway

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/console"
	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

func TestHumanDuration(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{400 * time.Millisecond, "0s"},
		{30 * time.Second, "30s"},
		{10 * time.Minute, "10m"},
		{90 * time.Second, "1m30s"},
		{time.Hour, "1h"},
		{time.Hour + 30*time.Minute, "1h30m"},
		{time.Hour + 5*time.Second, "1h0m5s"},
		{20 * time.Second, "20s"},
	} {
		if got := humanDuration(tc.in); got != tc.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestUpstreamDebugLine: every upstream attempt gets a console line at
// debug level, naming model, key, status and time; at info there is none.
func TestUpstreamDebugLine(t *testing.T) {
	pool, err := keyring.New([]keyring.Entry{{ID: 7, Secret: secret.New("sk-or-v1-observer-test-key-0123456789")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := pool.ByID(7)
	for _, tt := range []struct {
		level slog.Level
		code  int
		model string
		want  string
	}{
		{slog.LevelDebug, 200, "a/b", "↪️ a/b on API Key #7: 200 in 12ms\n"},
		{slog.LevelDebug, 0, "", "↪️ request on API Key #7: no answer in 12ms\n"},
		{slog.LevelInfo, 200, "a/b", ""},
	} {
		var out strings.Builder
		o := NewObserver(nil, console.New(&out, "text", tt.level), pool.Len())
		o.Upstream(k, tt.model, tt.code, 12*time.Millisecond)
		if out.String() != tt.want {
			t.Errorf("level %v, code %d: logged %q, want %q", tt.level, tt.code, out.String(), tt.want)
		}
	}
}

// TestModelLabelOnlyAfterSuccess: a model name is a label value only once
// upstream answered it with success; made-up names count as unknown.
func TestModelLabelOnlyAfterSuccess(t *testing.T) {
	o := NewObserver(nil, slog.New(slog.DiscardHandler), 0)
	for _, tc := range []struct {
		model string
		code  int
		want  string
	}{
		{"made/up", 404, ""},
		{"made/up", 400, ""},
		{"real/model", 200, "real/model"},
		{"real/model", 429, "real/model"},
		{"real/model", 0, "real/model"},
		{"", 200, ""},
	} {
		if got := o.modelLabel(tc.model, tc.code); got != tc.want {
			t.Errorf("modelLabel(%q, %d) = %q, want %q", tc.model, tc.code, got, tc.want)
		}
	}
}

// TestUnaffordableLine: a 402 "can only afford M" tells on the console
// which key could not pay and why; it rests nothing, and the call's retry
// on another key had no reason beside it. Other verdicts print no such
// line.
func TestUnaffordableLine(t *testing.T) {
	pool, err := keyring.New([]keyring.Entry{{ID: 3, Secret: secret.New("sk-or-v1-observer-test-key-0123456789")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := pool.ByID(3)
	for _, tt := range []struct {
		name    string
		v       fault.Verdict
		account string
		want    string
	}{
		{"account", fault.Verdict{Status: 402, Scope: fault.Request, Afford: 120, Model: "a/b"}, "4c5a3a9d",
			"💸 API Key #3 cannot afford this call to a/b (402: the credits of account 4c5a3a9d… pay for at most 120 tokens); nothing rests\n"},
		{"account unknown", fault.Verdict{Status: 402, Scope: fault.Request, Afford: 120}, "",
			"💸 API Key #3 cannot afford this call (402: its account's credits pay for at most 120 tokens); nothing rests\n"},
		{"key cap", fault.Verdict{Status: 402, Scope: fault.Request, Afford: 50, OnKey: true, Model: "a/b"}, "4c5a3a9d",
			"💸 API Key #3 cannot afford this call to a/b (402: its credit cap pays for at most 50 tokens); nothing rests\n"},
		{"large request, key cap", fault.Verdict{Status: 402, Scope: fault.Request, Afford: 1, OnKey: true, Model: "a/b"}, "",
			"💸 API Key #3 cannot afford this call to a/b (402: a large request, more than its credit cap has left); nothing rests\n"},
		{"a request fault", fault.Verdict{Status: 400, Scope: fault.Request, Model: "a/b"}, "", ""},
		{"a key fault", fault.Verdict{Status: 402, Scope: fault.Key, Reason: fault.KeyLimit, Retry: true}, "", ""},
		{"success", fault.Verdict{Status: 200}, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			o := NewObserver(nil, console.New(&out, "text", slog.LevelInfo), pool.Len())
			o.SetAccounts(func(*keyring.Key) string { return tt.account })
			o.Follow(pool)
			o.Judged(k, tt.v)
			if out.String() != tt.want {
				t.Errorf("logged %q, want %q", out.String(), tt.want)
			}
		})
	}
}

// TestCooldownLineWordsItsCause: a rest an answer caused names its status,
// as the contract's line does; one the key's figures found (a cap spent by
// GET /key or by the spend counted since, no call refused) says so, where it
// printed "(402)" though no call got one.
func TestCooldownLineWordsItsCause(t *testing.T) {
	pool, err := keyring.New([]keyring.Entry{{ID: 3, Secret: secret.New("sk-or-v1-observer-test-key-0123456789")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := pool.ByID(3)
	for _, tt := range []struct {
		name string
		v    fault.Verdict
		want string
	}{
		{"an answer's 429", fault.Verdict{Status: 429, Scope: fault.Key, Reason: fault.RateLimit, Model: "a/b"},
			"🧊 API Key #3 cooling down for 30s (429) after a/b\n"},
		{"an answer's 402", fault.Verdict{Status: 402, Scope: fault.Key, Reason: fault.KeyLimit},
			"🧊 API Key #3 cooling down for 30s (402)\n"},
		{"a poll's spent cap", fault.Verdict{Status: 402, Scope: fault.Key, Reason: fault.KeyLimit, Polled: true},
			"🧊 API Key #3 cooling down for 30s (cap spent)\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			o := NewObserver(nil, console.New(&out, "text", slog.LevelInfo), pool.Len())
			o.Follow(pool)
			o.Cooldown(k, tt.v, 30*time.Second)
			if out.String() != tt.want {
				t.Errorf("logged %q, want %q", out.String(), tt.want)
			}
		})
	}
}
