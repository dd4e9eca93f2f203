package sse

import (
	"slices"
	"testing"
)

// TestLeadingBOM: one U+FEFF at the very start of a stream is dropped, as
// the rules say, however the reads cut it; anywhere else it is a byte of
// its line (here of a field name, so that event has no data).
func TestLeadingBOM(t *testing.T) {
	tests := []struct {
		name, stream string
		want         []string
	}{
		{"a BOM, then events", "\xEF\xBB\xBFdata: a\n\ndata: b\n\n", []string{"a", "b"}},
		{"no BOM", "data: a\n\n", []string{"a"}},
		{"a second BOM", "\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n", []string{"b"}},
		{"a BOM on a later line", "data: a\n\n\xEF\xBB\xBFdata: b\n\n", []string{"a"}},
		{"a BOM's first bytes only", "\xEF\xBBdata: a\n\ndata: b\n\n", []string{"b"}},
		{"a BOM, then a comment", "\xEF\xBB\xBF: hi\ndata: a\n\n", []string{"a"}},
		{"a BOM alone", "\xEF\xBB\xBF", nil},
	}
	for _, tt := range tests {
		for cut := 0; cut <= len(tt.stream); cut++ {
			var s Splitter
			var got []string
			for _, piece := range []string{tt.stream[:cut], tt.stream[cut:]} {
				for ev, rest, ok := s.Next([]byte(piece)); ok; ev, rest, ok = s.Next(rest) {
					got = append(got, string(ev.Data))
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("%s, cut at %d: events %q, want %q", tt.name, cut, got, tt.want)
			}
		}
	}
	// Reset starts a new stream: its BOM is dropped too.
	var s Splitter
	s.Next([]byte("data: a\n\n"))
	s.Reset()
	if ev, _, ok := s.Next([]byte("\xEF\xBB\xBFdata: b\n\n")); !ok || string(ev.Data) != "b" {
		t.Errorf("after Reset: %q, %v", ev.Data, ok)
	}
}
