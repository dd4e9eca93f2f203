package config

import (
	"strings"
	"testing"
)

// TestBadNumberSaysWhatIsWanted: a setting that does not parse names what
// it wants, as PORT's "want a whole number" and the durations' "want a
// duration like 30s" do, not "a valid value".
func TestBadNumberSaysWhatIsWanted(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"CLIENT_REST_SHARE=50%", `invalid CLIENT_REST_SHARE="50%": want a number like 0.5`},
		{"GC_MIN_HEAP_BYTES=32MiB", `invalid GC_MIN_HEAP_BYTES="32MiB": want a whole number, 0 or more`},
		{"GC_MIN_HEAP_BYTES=-1", `invalid GC_MIN_HEAP_BYTES="-1": want a whole number, 0 or more`},
	} {
		_, err := Load([]string{"OPENROUTER_API_KEY_1=" + testKey("1"), tc.env}, nil, true)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.env, err, tc.want)
		}
	}
}
