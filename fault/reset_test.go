package fault

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

// epoch is Friday, 02 Jan 2026 15:04:05 GMT.
var epoch = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

func ms(d time.Duration) string  { return strconv.FormatInt(epoch.Add(d).UnixMilli(), 10) }
func sec(d time.Duration) string { return strconv.FormatInt(epoch.Add(d).Unix(), 10) }

type hintCase struct {
	name, v string
	want    time.Duration // 0: not ok
}

func checkHint(t *testing.T, parse func(string, time.Time) (time.Duration, bool), tests []hintCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := parse(tt.v, epoch)
			if ok != (tt.want != 0) || d != tt.want {
				t.Fatalf("parse(%q) = %v, %v; want %v", tt.v, d, ok, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	checkHint(t, ParseRetryAfter, []hintCase{
		{"seconds", "5", 5 * time.Second},
		{"spaces", " 120 ", 2 * time.Minute},
		{"leading zeros", "007", 7 * time.Second},
		{"zero", "0", 0},
		{"negative", "-1", 0},
		{"plus sign", "+5", 0},
		{"fraction", "1.5", 0},
		{"unit", "5s", 0},
		{"hex", "0x10", 0},
		{"word", "abc", 0},
		{"empty", "", 0},
		{"blank", "   ", 0},
		{"a day", "86400", 24 * time.Hour},
		{"over a day", "86401", 0},
		{"over uint32", "4294967296", 0},
		{"huge", "99999999999999999999999999", 0},
		{"IMF-fixdate", "Fri, 02 Jan 2026 15:05:35 GMT", 90 * time.Second},
		{"RFC 850", "Friday, 02-Jan-26 15:05:35 GMT", 90 * time.Second},
		{"ANSI C", "Fri Jan  2 15:05:35 2026", 90 * time.Second},
		{"date a day ahead", "Sat, 03 Jan 2026 15:04:05 GMT", 24 * time.Hour},
		{"date over a day ahead", "Sat, 03 Jan 2026 15:04:06 GMT", 0},
		{"date now", "Fri, 02 Jan 2026 15:04:05 GMT", 0},
		{"date past", "Fri, 02 Jan 2026 15:04:04 GMT", 0},
		{"date long past", "Thu, 01 Jan 1970 00:00:00 GMT", 0},
		{"RFC 850 past", "Thursday, 01-Jan-26 15:05:35 GMT", 0},
		{"ANSI C past", "Thu Jan  1 15:05:35 2026", 0},
		{"date not GMT", "Fri, 02 Jan 2026 15:05:35 UTC", 0},
		{"date garbled", "Fri, 32 Jan 2026 15:05:35 GMT", 0},
		{"date with junk", "Fri, 02 Jan 2026 15:05:35 GMT x", 0},
	})
}

func TestParseRateLimitReset(t *testing.T) {
	checkHint(t, ParseRateLimitReset, []hintCase{
		{"epoch ms", ms(30 * time.Second), 30 * time.Second},
		{"epoch ms, spaces", " " + ms(1500*time.Millisecond) + " ", 1500 * time.Millisecond},
		{"epoch ms, a day", ms(24 * time.Hour), 24 * time.Hour},
		{"epoch ms, over a day", ms(24*time.Hour + time.Millisecond), 0},
		{"epoch ms now", ms(0), 0},
		{"epoch ms past", ms(-time.Second), 0},
		{"epoch seconds", sec(45 * time.Second), 45 * time.Second},
		{"epoch seconds past", sec(-45 * time.Second), 0},
		{"epoch microseconds", strconv.FormatInt(epoch.Add(time.Minute).UnixMicro(), 10), 0},
		{"relative seconds", "60", 0},
		{"zero", "0", 0},
		{"negative", "-" + ms(time.Minute), 0},
		{"fraction", ms(time.Minute) + ".5", 0},
		{"exponent", "1.8e12", 0},
		{"garbage", "soon", 0},
		{"empty", "", 0},
		{"overflow", "99999999999999999999", 0},
	})
}

func TestResetHint(t *testing.T) {
	tests := []struct {
		name, retryAfter, reset string
		want                    time.Duration
	}{
		{"neither", "", "", 0},
		{"Retry-After only", "7", "", 7 * time.Second},
		{"X-RateLimit-Reset only", "", ms(9 * time.Second), 9 * time.Second},
		{"Retry-After wins", "7", ms(9 * time.Second), 7 * time.Second},
		{"Retry-After date wins", "Fri, 02 Jan 2026 15:04:15 GMT", ms(time.Minute), 10 * time.Second},
		{"garbage Retry-After falls back", "soon", ms(9 * time.Second), 9 * time.Second},
		{"zero Retry-After falls back", "0", ms(9 * time.Second), 9 * time.Second},
		{"past Retry-After date falls back", "Fri, 02 Jan 2026 15:00:00 GMT", ms(9 * time.Second), 9 * time.Second},
		{"too long Retry-After falls back", "100000", ms(9 * time.Second), 9 * time.Second},
		{"garbage both", "soon", "later", 0},
		{"past reset", "", ms(-time.Second), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.retryAfter != "" {
				h.Set("Retry-After", tt.retryAfter)
			}
			if tt.reset != "" {
				h.Set("X-RateLimit-Reset", tt.reset)
			}
			d, ok := ResetHint(h, epoch)
			if ok != (tt.want != 0) || d != tt.want {
				t.Fatalf("ResetHint = %v, %v; want %v", d, ok, tt.want)
			}
		})
	}
}

// checkBounded is the promise both parsers make for any input.
func checkBounded(t *testing.T, v string, d time.Duration, ok bool) {
	t.Helper()
	if ok && (d <= 0 || d > MaxHint) {
		t.Fatalf("%q: ok with %v, outside (0, %v]", v, d, MaxHint)
	}
	if !ok && d != 0 {
		t.Fatalf("%q: not ok but %v", v, d)
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, v := range []string{"5", "0", "-1", "1.5", "", "abc", "86400", "86401", "4294967296",
		"Fri, 02 Jan 2026 15:05:35 GMT", "Friday, 02-Jan-26 15:05:35 GMT", "Fri Jan  2 15:05:35 2026",
		"Thu, 01 Jan 1970 00:00:00 GMT", "Sat, 03 Jan 2026 15:04:05 GMT"} {
		f.Add(v, int64(0))
		f.Add(v, int64(-time.Hour))
	}
	f.Fuzz(func(t *testing.T, v string, offset int64) {
		d, ok := ParseRetryAfter(v, epoch.Add(time.Duration(offset)))
		checkBounded(t, v, d, ok)
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && ok && d != time.Duration(n)*time.Second {
			t.Fatalf("%q: %v", v, d)
		}
	})
}

func FuzzParseRateLimitReset(f *testing.F) {
	for _, v := range []string{ms(time.Minute), ms(-time.Minute), sec(time.Minute), ms(25 * time.Hour),
		"0", "-1", "60", "1.8e12", "", "abc", "99999999999999999999", "-9223372036854775808"} {
		f.Add(v, int64(0))
		f.Add(v, int64(time.Hour))
	}
	f.Fuzz(func(t *testing.T, v string, offset int64) {
		d, ok := ParseRateLimitReset(v, epoch.Add(time.Duration(offset)))
		checkBounded(t, v, d, ok)
	})
}
