package config

import "testing"

// TestWordsInAnyCase: KEY_ROTATION and LOG_FORMAT take their words in any
// case, as LOG_LEVEL does (LOG_LEVEL=INFO was accepted while
// LOG_FORMAT=JSON was refused), and what the rest of keygate reads is the
// lower-case word.
func TestWordsInAnyCase(t *testing.T) {
	for _, tt := range []struct {
		env              []string
		rotation, format string
	}{
		{[]string{"KEY_ROTATION=Round-Robin", "LOG_FORMAT=JSON"}, "round-robin", "json"},
		{[]string{"KEY_ROTATION=LEAST-BUSY", "LOG_FORMAT=Text"}, "least-busy", "text"},
		{[]string{"KEY_ROTATION=random", "LOG_FORMAT=json", "LOG_LEVEL=INFO"}, "random", "json"},
	} {
		c, err := Load(append(tt.env, "OPENROUTER_API_KEY_1="+testKey("1")), nil, false)
		if err != nil {
			t.Fatalf("%v: %v", tt.env, err)
		}
		if c.KeyRotation != tt.rotation || c.LogFormat != tt.format {
			t.Errorf("%v: rotation %q, format %q; want %q, %q", tt.env, c.KeyRotation, c.LogFormat, tt.rotation, tt.format)
		}
	}
}
