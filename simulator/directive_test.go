package simulator

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseDirectives(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want fault
		err  error
	}{
		{"", fault{}, nil},
		{" , ,", fault{}, nil},
		{"status=429", fault{status: 429}, nil},
		{"status=200", fault{status: 200}, nil},
		{"status=599,status=400", fault{status: 400}, nil},
		{"reset=http-date,after=5", fault{hintSet: true, hint: HintHTTPDate, afterSet: true, after: 5 * time.Second}, nil},
		{"reset=RateLimit-Reset,after=250ms", fault{hintSet: true, hint: HintRateLimitReset, afterSet: true, after: 250 * time.Millisecond}, nil},
		{"reset=none", fault{hintSet: true, hint: HintNone}, nil},
		{"reset", fault{reset: true}, nil},
		{"RESET, truncate ,badJSON,noUsage", fault{reset: true, truncate: true, badJSON: true, noUsage: true}, nil},
		{"delay=300ms,chunkdelay=0s,chunks=9", fault{delaySet: true, delay: 300 * time.Millisecond, chunkDelaySet: true, chunks: 9}, nil},
		{"big=8MB", fault{big: 8 << 20}, nil},
		{"moderation,guardrail,provider429,inflight,nodata", fault{moderation: true, guardrail: true, provider429: true, inFlight: true, noData: true}, nil},
		{"inband=429", fault{inband: 429}, nil},
		{"errorafter=3", fault{inband: 502, errAfter: 3}, nil},
		{"inband=500,errorafter=0", fault{inband: 500}, nil},
		{"hold=2s", fault{holdSet: true, hold: 2 * time.Second}, nil},
		{"jsonStream", fault{jsonStream: true}, nil},
		{"jsonstream=1", fault{}, errBadDirective},
		{"inband=200", fault{}, errBadDirective},
		{"errorafter=-1", fault{}, errBadDirective},
		{"moderation=yes", fault{}, errBadDirective},
		{"hold=forever", fault{}, errBadDirective},
		{"big=512kb", fault{big: 512 << 10}, nil},
		{"big=1000", fault{big: 1000}, nil},
		{"statsu=500", fault{}, errUnknownDirective},
		{"status", fault{}, errBadDirective},
		{"status=100", fault{}, errBadDirective},
		{"status=302", fault{}, errBadDirective},
		{"status=600", fault{}, errBadDirective},
		{"reset=later", fault{}, errBadDirective},
		{"after=-1", fault{}, errBadDirective},
		{"after=soon", fault{}, errBadDirective},
		{"delay=5", fault{}, errBadDirective},
		{"delay=-1s", fault{}, errBadDirective},
		{"delay=61m", fault{}, errBadDirective},
		{"chunks=0", fault{}, errBadDirective},
		{"chunks=10001", fault{}, errBadDirective},
		{"truncate=yes", fault{}, errBadDirective},
		{"big=1TB", fault{}, errBadDirective},
		{"big=257MB", fault{}, errBadDirective},
		{"big=-1", fault{}, errBadDirective},
		{"big=MB", fault{}, errBadDirective},
		{"big=", fault{}, errBadDirective},
		{"=1", fault{}, errUnknownDirective},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var f fault
			err := parseDirectives(tt.in, &f)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if tt.err == nil && f != tt.want {
				t.Errorf("got %+v, want %+v", f, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := map[string]int{
		"0": 0, "1": 1, "10B": 10, "2K": 2048, "2KiB": 2048, "3M": 3 << 20, "3mib": 3 << 20,
		"256MB": 256 << 20, "0G": 0,
	}
	for in, want := range tests {
		if got, ok := parseSize(in); !ok || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "x", "1.5MB", "1G", "1 2", "+1", "1PB", "99999999999999999999"} {
		if got, ok := parseSize(in); ok {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func FuzzParseDirectives(f *testing.F) {
	for _, s := range []string{
		"", "status=429,reset=http-date,after=5", "delay=300ms,chunkdelay=1s,chunks=3",
		"reset", "truncate,badjson,noUsage", "big=8MB", "big=512KB", "after=1500ms",
		"status=", "=,=,", ",,,", "big=9999999999999999999GB", "chunks=-1", "delay=1e9h",
		"reset=none,reset", "STATUS = 503 , Reset = RATELIMIT-RESET", "\x00=\xff",
		"moderation,guardrail", "provider429,after=7", "inflight", "inband=429,errorafter=2", "nodata,hold=1s", "errorafter=99999",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var fl fault
		if err := parseDirectives(s, &fl); err != nil {
			if !errors.Is(err, errUnknownDirective) && !errors.Is(err, errBadDirective) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if fl.status != 0 && fl.status != 200 && (fl.status < 400 || fl.status > 599) {
			t.Fatalf("status %d accepted", fl.status)
		}
		if fl.delay < 0 || fl.delay > maxDirectiveDelay || fl.chunkDelay < 0 || fl.chunkDelay > maxDirectiveDelay {
			t.Fatalf("delay %v / %v accepted", fl.delay, fl.chunkDelay)
		}
		if fl.chunks < 0 || fl.chunks > maxChunks || fl.big < 0 || fl.big > maxBig || fl.after < 0 {
			t.Fatalf("out of range: %+v", fl)
		}
		if fl.inband != 0 && (fl.inband < 400 || fl.inband > 599) || fl.errAfter < 0 || fl.errAfter > maxChunks || fl.hold < 0 || fl.hold > maxDirectiveDelay {
			t.Fatalf("stream directives out of range: %+v", fl)
		}
		if fl.hintSet && (fl.hint < HintRetryAfter || fl.hint > HintNone) {
			t.Fatalf("hint %v", fl.hint)
		}
	})
}

// FuzzAppendQuoted checks the hand-written JSON string encoder against
// encoding/json: always valid, and the same text back.
func FuzzAppendQuoted(f *testing.F) {
	for _, s := range []string{"", "plain", `"quoted" \ back`, "tab\tnl\ncr\r\x00\x1f\x7f", "héllo 🙂", "\u2028\u2029", "bad \xff\xfe utf8 \xe2\x82"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendQuoted(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q encodes to invalid JSON %s: %v", s, b, err)
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if utf8.ValidString(s) && back != s || !utf8.ValidString(s) && back != decodeLikeJSON(s) {
			t.Fatalf("%q came back as %q (want %q)", s, back, want)
		}
	})
}

// decodeLikeJSON replaces each invalid byte with U+FFFD, as encoding/json.
func decodeLikeJSON(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r)
		i += n
	}
	return b.String()
}

func TestSplit(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "a", "héllo 🙂 wörld", strings.Repeat("🙂", 10)} {
		for n := 1; n <= 12; n++ {
			parts := split(s, n)
			if len(parts) != n || strings.Join(parts, "") != s {
				t.Fatalf("split(%q, %d) = %q", s, n, parts)
			}
			for _, p := range parts {
				if !utf8.ValidString(p) {
					t.Fatalf("split(%q, %d) cut a rune: %q", s, n, parts)
				}
			}
		}
	}
}
