package sse

import (
	"bytes"
	"strings"
	"testing"
)

type got struct{ name, data string }

// split feeds stream to a fresh splitter in pieces cut at cuts and returns
// the events, and whether an event was left pending at the end.
func split(stream []byte, cuts []int, max int) ([]got, bool) {
	s := Splitter{Max: max}
	var out []got
	prev := 0
	feed := func(p []byte) {
		for ev, rest, ok := s.Next(p); ok; ev, rest, ok = s.Next(rest) {
			out = append(out, got{string(ev.Name), string(ev.Data)})
		}
	}
	for _, c := range cuts {
		if c < prev || c > len(stream) {
			continue
		}
		feed(stream[prev:c])
		prev = c
	}
	feed(stream[prev:])
	return out, s.Pending()
}

func TestSplitter(t *testing.T) {
	tests := []struct {
		name    string
		stream  string
		want    []got
		pending bool
	}{
		{"one event", "data: {\"a\":1}\n\n", []got{{"", `{"a":1}`}}, false},
		{"no space after colon", "data:x\n\n", []got{{"", "x"}}, false},
		{"only the first space is dropped", "data:  x\n\n", []got{{"", " x"}}, false},
		{"crlf", "data: a\r\n\r\ndata: b\r\n\r\n", []got{{"", "a"}, {"", "b"}}, false},
		{"cr", "data: a\r\rdata: b\r\r", []got{{"", "a"}, {"", "b"}}, false},
		{"multi-line data", "data: a\ndata: b\n\n", []got{{"", "a\nb"}}, false},
		{"comments are not events", ": OPENROUTER PROCESSING\n\n: ping\n\ndata: x\n\n", []got{{"", "x"}}, false},
		{"comment inside an event", "data: a\n: note\ndata: b\n\n", []got{{"", "a\nb"}}, false},
		{"event name", "event: delta\ndata: x\n\nevent: done\ndata: y\n\n", []got{{"delta", "x"}, {"done", "y"}}, false},
		{"name without data is dropped", "event: ping\n\ndata: x\n\n", []got{{"", "x"}}, false},
		{"bare data field is an empty line", "data\n\n", []got{{"", ""}}, false},
		{"id and retry are ignored", "id: 7\nretry: 10\ndata: x\n\n", []got{{"", "x"}}, false},
		{"unterminated event is pending", "data: x\n", nil, true},
		{"unterminated line is pending", "data: x", nil, true},
		{"done marker", "data: [DONE]\n\n", []got{{"", "[DONE]"}}, false},
		{"blank lines between", "\n\n\ndata: x\n\n\n", []got{{"", "x"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Whole, byte by byte, and every single cut.
			cutsets := [][]int{nil, allCuts(len(tt.stream))}
			for i := range len(tt.stream) {
				cutsets = append(cutsets, []int{i})
			}
			for _, cuts := range cutsets {
				evs, pending := split([]byte(tt.stream), cuts, 0)
				if !equal(evs, tt.want) || pending != tt.pending {
					t.Fatalf("cuts %v: events %q pending %v, want %q pending %v", cuts, evs, pending, tt.want, tt.pending)
				}
			}
		})
	}
}

func TestSplitterMax(t *testing.T) {
	long := "data: " + strings.Repeat("x", 100) + "\n\n"
	stream := long + "data: ok\n\n" + "data: " + strings.Repeat("y", 30) + "\ndata: " + strings.Repeat("z", 30) + "\n\ndata: fine\n\n"
	for _, cuts := range [][]int{nil, allCuts(len(stream)), {50}, {3, 70, 120}} {
		evs, _ := split([]byte(stream), cuts, 40)
		want := []got{{"", "ok"}, {"", "fine"}}
		if !equal(evs, want) {
			t.Fatalf("cuts %v: %q, want %q (events past Max skipped whole)", cuts, evs, want)
		}
	}
	// Both long events are counted, however the stream is cut.
	for _, cuts := range [][]int{nil, allCuts(len(stream))} {
		s := Splitter{Max: 40}
		prev := 0
		for _, c := range append(cuts, len(stream)) {
			for _, rest, ok := s.Next([]byte(stream[prev:c])); ok; _, rest, ok = s.Next(rest) {
			}
			prev = c
		}
		if s.Skipped != 2 {
			t.Fatalf("cuts %v: Skipped %d, want 2", cuts, s.Skipped)
		}
	}
}

func TestSplitterComments(t *testing.T) {
	var s Splitter
	_, _, ok := s.Next([]byte(": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\n"))
	if ok || s.Comments != 2 || s.Pending() {
		t.Fatalf("ok %v comments %d pending %v, want no event, 2 comments, nothing pending", ok, s.Comments, s.Pending())
	}
}

func TestSplitterReset(t *testing.T) {
	var s Splitter
	s.Next([]byte("data: half"))
	s.Reset()
	ev, _, ok := s.Next([]byte("data: x\n\n"))
	if !ok || string(ev.Data) != "x" {
		t.Fatalf("after Reset: %q %v", ev.Data, ok)
	}
}

func TestSplitterAllocs(t *testing.T) {
	stream := []byte(": c\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n")
	var s Splitter
	s.Next(stream) // warm the buffers
	a := testing.AllocsPerRun(100, func() {
		for ev, rest, ok := s.Next(stream); ok; ev, rest, ok = s.Next(rest) {
			_ = ev
		}
		s.Next(stream[:10])
		s.Next(stream[10:])
	})
	if a != 0 {
		t.Fatalf("%v allocations per stream, want 0 once warm", a)
	}
}

func allCuts(n int) []int {
	c := make([]int, n)
	for i := range c {
		c[i] = i
	}
	return c
}

func equal(a, b []got) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzSplitter: any split of a stream into reads gives the same events as
// the stream read whole, and the same as a simple reference splitter.
func FuzzSplitter(f *testing.F) {
	f.Add([]byte("data: a\n\n"), uint64(3))
	f.Add([]byte(": OPENROUTER PROCESSING\n\ndata: {\"error\":{\"code\":429}}\n\n"), uint64(77))
	f.Add([]byte("event: delta\r\ndata: x\r\ndata: y\r\n\r\n"), uint64(12345))
	f.Add([]byte("data: a\r\rdata:b\r\n\ndata\n\n"), uint64(9))
	f.Add([]byte("data: [DONE]\n\n"), uint64(1))
	f.Fuzz(func(t *testing.T, stream []byte, seed uint64) {
		whole, wp := split(stream, nil, 64)
		ref := reference(stream, 64)
		if !equal(whole, ref) {
			t.Fatalf("whole %q, reference %q", whole, ref)
		}
		var cuts []int
		for x, at := seed, 0; x != 0 && at < len(stream); x >>= 4 {
			at += int(x&15) + 1
			cuts = append(cuts, at)
		}
		pieces, pp := split(stream, cuts, 64)
		if !equal(whole, pieces) || wp != pp {
			t.Fatalf("cuts %v: %q pending %v, whole %q pending %v", cuts, pieces, pp, whole, wp)
		}
		bytewise, bp := split(stream, allCuts(len(stream)), 64)
		if !equal(whole, bytewise) || wp != bp {
			t.Fatalf("byte by byte: %q, whole %q", bytewise, whole)
		}
	})
}

// reference splits a whole stream the plain way: normalise line ends, cut
// lines, apply the rules.
func reference(stream []byte, max int) []got {
	s := bytes.ReplaceAll(stream, []byte("\r\n"), []byte("\n"))
	s = bytes.ReplaceAll(s, []byte("\r"), []byte("\n"))
	lines := bytes.Split(s, []byte("\n"))
	// The last piece has no line end: it is not a line.
	lines = lines[:len(lines)-1]
	var out []got
	var data, name []byte
	has, long := false, false
	for _, l := range lines {
		if len(l) > max {
			long = true
			continue
		}
		if len(l) == 0 {
			if has && !long {
				out = append(out, got{string(name), string(data)})
			}
			data, name, has, long = nil, nil, false, false
			continue
		}
		if l[0] == ':' {
			continue
		}
		f, v, _ := bytes.Cut(l, []byte(":"))
		v = bytes.TrimPrefix(v, []byte(" "))
		switch string(f) {
		case "data":
			if has {
				data = append(data, '\n')
			}
			if len(data)+len(v) > max {
				long = true
			}
			data = append(data, v...)
			has = true
		case "event":
			name = append([]byte(nil), v...)
		}
	}
	return out
}

// TestEnd: End hands over the event a stream ended in before its blank
// line, and nothing when none was in progress.
func TestEnd(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"", "", false},
		{"data: x\n\n", "", false},
		{"data: x", "x", true},
		{"data: x\r", "x", true},
		{"data: x\n", "x", true},
		{"data: a\ndata: b", "a\nb", true},
		{": comment", "", false},
	} {
		var s Splitter
		for _, _, ok := s.Next([]byte(tc.in)); ok; _, _, ok = s.Next(nil) {
		}
		ev, ok := s.End()
		if ok != tc.ok || string(ev.Data) != tc.want {
			t.Errorf("%q: End() = %q, %v; want %q, %v", tc.in, ev.Data, ok, tc.want, tc.ok)
		}
	}
}
