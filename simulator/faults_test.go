package simulator

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"
)

func TestProfileStatus(t *testing.T) {
	t.Parallel()
	h := startSim(t, testOptions())
	tests := []struct {
		key    string
		status int
		msg    string
	}{
		{keyRevoked, 401, "User not found."},
		{keyBroke, 402, "Insufficient credits"},
		{keyBanned, 403, "Key is disabled"},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			for _, path := range []string{"/chat/completions", "/models", "/echo"} {
				method := "GET"
				if path == "/chat/completions" {
					method = "POST"
				}
				r := h.do(method, path, tt.key, chatBody("m", "hi", false), nil)
				if r.status != tt.status {
					t.Fatalf("%s: status %d, want %d", path, r.status, tt.status)
				}
				if msg, code := apiError(t, r.body); msg != tt.msg || code != tt.status {
					t.Errorf("%s: error %q %d", path, msg, code)
				}
				if r.header.Get("Retry-After") != "" {
					t.Errorf("%s: Retry-After on %d", path, tt.status)
				}
			}
		})
	}
	t.Run("profile before directives", func(t *testing.T) {
		r := h.chat(keyRevoked, "sim/not-a-directive", "hi", false, nil)
		if r.status != 401 {
			t.Errorf("status %d, want the key's 401", r.status)
		}
	})
}

func TestProfileRateLimitBursts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		every, burst int
		want         []int
	}{
		{"3 of 5", 5, 3, []int{429, 429, 429, 200, 200, 429, 429, 429, 200, 200, 429}},
		{"1 of 2", 2, 1, []int{429, 200, 429, 200}},
		{"burst covers window", 2, 5, []int{429, 429, 429}},
		{"no burst", 3, 0, []int{200, 200, 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := testOptions()
			opts.Keys["k"] = Profile{RateLimitEvery: tt.every, RateLimitBurst: tt.burst}
			h := startSim(t, opts)
			var got []int
			for range tt.want {
				r := h.chat("k", "m", "hi", false, nil)
				got = append(got, r.status)
				if r.status == 429 && r.header.Get("Retry-After") != "1" {
					t.Errorf("default hint: Retry-After %q, want 1", r.header.Get("Retry-After"))
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("statuses %v, want %v", got, tt.want)
			}
		})
	}
}

func TestProfileServerErrors(t *testing.T) {
	t.Parallel()
	const n = 200
	run := func(p Profile, seed uint64) []int {
		opts := testOptions()
		opts.Seed = seed
		opts.Keys["k"] = p
		h := startSim(t, opts)
		var got []int
		for range n {
			got = append(got, h.chat("k", "m", "hi", false, nil).status)
		}
		return got
	}
	count := func(sts []int, code int) int {
		c := 0
		for _, s := range sts {
			if s == code {
				c++
			}
		}
		return c
	}
	half := run(Profile{ServerErrorRate: 0.5}, 7)
	if c := count(half, 500); c < n/4 || c > 3*n/4 || count(half, 200) != n-c {
		t.Errorf("rate 0.5 gave %d of %d 500s: %v", c, n, half)
	}
	if again := run(Profile{ServerErrorRate: 0.5}, 7); !slices.Equal(half, again) {
		t.Error("same seed, different pattern")
	}
	if other := run(Profile{ServerErrorRate: 0.5}, 8); slices.Equal(half, other) {
		t.Error("another seed, same pattern")
	}
	if all := run(Profile{ServerErrorRate: 1, ServerErrorStatus: 502}, 7); count(all, 502) != n {
		t.Errorf("rate 1 with 502: %v", all)
	}
	if none := run(Profile{}, 7); count(none, 200) != n {
		t.Errorf("rate 0: %v", none)
	}
}

// TestResetHints checks the four forms of the reset hint, from a profile
// and from directives, against the injected clock (fixedNow, at .5s).
func TestResetHints(t *testing.T) {
	t.Parallel()
	opts := testOptions()
	for i, form := range []ResetHint{HintRetryAfter, HintHTTPDate, HintRateLimitReset, HintNone} {
		opts.Keys["limited-"+form.String()] = Profile{
			RateLimitEvery: 1, RateLimitBurst: 1, RateLimitReset: form, RetryAfter: time.Duration(i+2) * time.Second,
		}
	}
	h := startSim(t, opts)
	type check func(t *testing.T, hd http.Header)
	retryAfter := func(want string) check {
		return func(t *testing.T, hd http.Header) {
			if got := hd.Get("Retry-After"); got != want {
				t.Errorf("Retry-After %q, want %q", got, want)
			}
			if hd.Get("X-RateLimit-Reset") != "" {
				t.Error("X-RateLimit-Reset set too")
			}
		}
	}
	httpDate := func(after time.Duration) check {
		return func(t *testing.T, hd http.Header) {
			at, err := http.ParseTime(hd.Get("Retry-After"))
			want := fixedNow.Add(after).Truncate(time.Second).Add(time.Second) // rounded up
			if err != nil || !at.Equal(want) {
				t.Errorf("Retry-After %q (%v), want %v", hd.Get("Retry-After"), err, want)
			}
		}
	}
	resetMillis := func(after time.Duration) check {
		return func(t *testing.T, hd http.Header) {
			want := strconv.FormatInt(fixedNow.Add(after).UnixMilli(), 10)
			if got := hd.Get("X-RateLimit-Reset"); got != want || hd.Get("X-RateLimit-Remaining") != "0" {
				t.Errorf("X-RateLimit-Reset %q remaining %q, want %q", got, hd.Get("X-RateLimit-Remaining"), want)
			}
			if hd.Get("Retry-After") != "" {
				t.Error("Retry-After set too")
			}
		}
	}
	none := func(t *testing.T, hd http.Header) {
		if hd.Get("Retry-After") != "" || hd.Get("X-RateLimit-Reset") != "" {
			t.Errorf("hint sent: %v", hd)
		}
	}
	tests := []struct {
		name, key, model string
		status           int
		check            check
	}{
		{"profile retry-after", "limited-retry-after", "m", 429, retryAfter("2")},
		{"profile http-date", "limited-http-date", "m", 429, httpDate(3 * time.Second)},
		{"profile ratelimit-reset", "limited-ratelimit-reset", "m", 429, resetMillis(4 * time.Second)},
		{"profile none", "limited-none", "m", 429, none},
		{"directive default", keyOK, "sim/status=429", 429, retryAfter("1")},
		{"directive retry-after", keyOK, "sim/status=429,reset=retry-after,after=7", 429, retryAfter("7")},
		{"directive retry-after rounds up", keyOK, "sim/status=429,after=1500ms", 429, retryAfter("2")},
		{"directive after=0", keyOK, "sim/status=429,after=0", 429, retryAfter("0")},
		{"directive http-date", keyOK, "sim/status=429,reset=http-date,after=10", 429, httpDate(10 * time.Second)},
		{"directive ratelimit-reset", keyOK, "sim/status=429,reset=ratelimit-reset,after=2500ms", 429, resetMillis(2500 * time.Millisecond)},
		{"directive none", keyOK, "sim/status=429,reset=none", 429, none},
		{"503 with a hint", keyOK, "sim/status=503,reset=retry-after,after=9", 503, retryAfter("9")},
		{"503 without", keyOK, "sim/status=503,after=9", 503, none},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.chat(tt.key, tt.model, "hi", false, nil)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if _, code := apiError(t, r.body); code != tt.status {
				t.Errorf("code %d", code)
			}
			tt.check(t, r.header)
		})
	}
}

func TestDirectives(t *testing.T) {
	t.Parallel()
	h := startSim(t, testOptions())
	type check func(t *testing.T, r reply)
	status := func(want int) check {
		return func(t *testing.T, r reply) {
			if r.status != want {
				t.Errorf("status %d, want %d: %.200s", r.status, want, r.body)
			}
		}
	}
	completion := func(t *testing.T, r reply) oaCompletion {
		var c oaCompletion
		if err := json.Unmarshal(r.body, &c); err != nil {
			t.Fatalf("decode: %v: %.200s", err, r.body)
		}
		return c
	}
	usage := func(want bool) check {
		return func(t *testing.T, r reply) {
			if c := completion(t, r); (c.Usage != nil) != want {
				t.Errorf("usage present %v, want %v", c.Usage != nil, want)
			}
		}
	}
	size := func(want int) check {
		return func(t *testing.T, r reply) {
			completion(t, r)
			if len(r.body) != want || r.header.Get("Content-Length") != strconv.Itoa(want) {
				t.Errorf("body %d bytes, Content-Length %s, want %d", len(r.body), r.header.Get("Content-Length"), want)
			}
		}
	}
	badJSON := func(t *testing.T, r reply) {
		if r.status != 200 || json.Valid(r.body) || len(r.body) == 0 {
			t.Errorf("status %d, valid JSON %v: %s", r.status, json.Valid(r.body), r.body)
		}
	}
	tests := []struct {
		name, model, header string
		checks              []check
	}{
		{"status 500", "sim/status=500", "", []check{status(500)}},
		{"status 502 by header", "m", "status=502", []check{status(502)}},
		{"status 200 is normal", "sim/status=200", "", []check{status(200), usage(true)}},
		{"model overrides header", "sim/status=502", "status=500", []check{status(502)}},
		{"names ignore case and blanks", "sim/ Status=418 , ", "", []check{status(418)}},
		{"noUsage", "sim/noUsage", "", []check{status(200), usage(false)}},
		{"nousage by header", "m", "NOUSAGE", []check{status(200), usage(false)}},
		{"badjson", "sim/badjson", "", []check{badJSON}},
		{"badjson on an error", "sim/status=500,badjson", "", []check{status(500), badJSON2(500)}},
		{"big 64KB", "sim/big=64KB", "", []check{status(200), size(64 << 10)}},
		{"big 8MB", "sim/big=8MB", "", []check{status(200), size(8 << 20)}},
		{"big odd size", "sim/big=12345,noUsage", "", []check{status(200), size(12345), usage(false)}},
		{"big below minimum", "sim/big=10", "", []check{status(200), usage(true)}},
		{"delay", "sim/delay=1ms", "", []check{status(200)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr map[string]string
			if tt.header != "" {
				hdr = map[string]string{HeaderFault: tt.header}
			}
			r := h.chat(keyOK, tt.model, "hi", false, hdr)
			if r.err != nil {
				t.Fatalf("reading body: %v", r.err)
			}
			if got := r.header.Get(HeaderBodySHA256); got != sha(r.body) {
				t.Errorf("SHA-256 header %q, body's %q", got, sha(r.body))
			}
			for _, c := range tt.checks {
				c(t, r)
			}
		})
	}
	t.Run("directives on echo", func(t *testing.T) {
		r := h.do("PUT", "/echo/x", keyOK, "abc", map[string]string{HeaderFault: "status=503,reset=http-date"})
		if r.status != 503 || r.header.Get("Retry-After") == "" {
			t.Errorf("status %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
		}
		r = h.do("GET", "/models", keyOK, "", map[string]string{HeaderFault: "badjson"})
		if r.status != 200 || json.Valid(r.body) {
			t.Errorf("models badjson: %d %s", r.status, r.body)
		}
	})
}

func badJSON2(code int) func(*testing.T, reply) {
	return func(t *testing.T, r reply) {
		if r.status != code || json.Valid(r.body) {
			t.Errorf("status %d, valid %v", r.status, json.Valid(r.body))
		}
	}
}

// TestDelay checks that delay= holds the reply back, errors included: on
// a synctest bubble's fake clock the call has no answer a nanosecond before
// the delay is over and has its whole answer when it is.
func TestDelay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, model string
		hdr         map[string]string
		delay       time.Duration
		status      int
	}{
		{"model directive", "sim/delay=60ms", nil, 60 * time.Millisecond, 200},
		{"header directive on an error", "m", map[string]string{HeaderFault: "delay=50ms,status=500"}, 50 * time.Millisecond, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := New(testOptions())
				defer s.Close()
				c := serveInBubble(t, s, keyOK, tc.model, false, tc.hdr)
				c.heldBetween(t, tc.delay, tc.delay)
				resp, body := c.result(t)
				if resp.StatusCode != tc.status || resp.Header.Get(HeaderBodySHA256) != sha([]byte(body)) {
					t.Fatalf("status %d, body %q; want %d, intact", resp.StatusCode, body, tc.status)
				}
			})
		})
	}
}
