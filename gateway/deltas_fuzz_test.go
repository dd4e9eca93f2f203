package gateway

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/secret"
)

// FuzzDeltas checks the masking of a streamed /run's content, cut into
// pieces anywhere: the pieces joined are the whole content masked at once
// (so nothing is lost, doubled or reordered), and no piece, nor any two
// pieces in a row, holds a whole key.
func FuzzDeltas(f *testing.F) {
	keys := []string{"sk-or-v1-" + strings.Repeat("ab12", 16), "sk-or-v1-" + strings.Repeat("ab12", 15) + "ffff", "sk-short-key-0123456789"}
	red := secret.NewRedactor([]secret.Key{secret.New(keys[0]), secret.New(keys[1]), secret.New(keys[2])})
	s := newBenchServer(f, nil, red)
	f.Add("my key is "+keys[0]+", and that is it.", []byte{7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7})
	f.Add(keys[1]+keys[0]+"s", []byte{1, 2, 3, 60, 5, 200})
	f.Add("sk-or-v1-ab12 is how it starts, "+keys[2][:10], []byte{3, 30})
	f.Add("no key here", []byte{})
	f.Fuzz(func(t *testing.T, text string, cuts []byte) {
		var pieces []string
		rest := text
		for _, c := range cuts {
			n := min(int(c), len(rest))
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		pieces = append(pieces, rest)
		var sent []string
		d := deltas{s: s, send: func(c string) { sent = append(sent, c) }}
		for _, p := range pieces {
			d.add(p)
		}
		d.end()
		if got, want := strings.Join(sent, ""), red.Redact(text); got != want {
			t.Fatalf("pieces %q sent %q: joined %q, want %q", pieces, sent, got, want)
		}
		for i, c := range sent {
			pair := c
			if i > 0 {
				pair = sent[i-1] + c
			}
			for _, k := range keys {
				if strings.Contains(pair, k) {
					t.Fatalf("sent %q holds the key %q", sent, k)
				}
			}
			if c == "" {
				t.Fatalf("an empty delta was sent: %q", sent)
			}
		}
	})
}
