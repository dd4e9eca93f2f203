package gateway

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/keygate/keygate/secret"
)

// fuzzPoolKeys is the pool FuzzRedactingReader masks. Besides keys of each
// known prefix it holds a key that extends another (redactShortKey is a
// prefix of redactLongKey), the case secret.NewRedactor sorts its keys
// longest first for.
var fuzzPoolKeys = []string{
	"sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef01234567c0de",
	"sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789wxyz",
	"sk-ZyXwVuTsRqPoNmLkJiHg9876",
	"0123456789abcdefghijklmnop",
	redactShortKey,
	redactLongKey,
}

const (
	redactShortKey = "sk-or-v1-aaaaaaaaaaaaaaaaaaaaaaaa"
	redactLongKey  = redactShortKey + "bbbbbbbbbbbbbbbbbbbbbbbbzzzz"
	// maxFuzzRedactText bounds the text a script expands to.
	maxFuzzRedactText = 64 << 10
)

// redactText expands a fuzzer script into an error body. Each op byte adds
// a pool key, a cut-off prefix of one, a run of filler (up to 8 KiB, so
// that keys land on both sides of redactingReader's redactBatch batches)
// or literal bytes taken from the script.
func redactText(script []byte, keys []string) string {
	var b strings.Builder
	for i := 0; i < len(script) && b.Len() < maxFuzzRedactText; {
		op := script[i]
		i++
		arg := int(op >> 2)
		switch op & 3 {
		case 0:
			b.WriteString(keys[arg%len(keys)])
		case 1:
			k := keys[arg%len(keys)]
			n := len(k) / 2
			if i < len(script) {
				n = int(script[i]) % len(k)
				i++
			}
			b.WriteString(k[:n])
		case 2:
			b.WriteString(strings.Repeat("x", (arg+1)*128))
		case 3:
			n := min(arg, len(script)-i)
			b.Write(script[i : i+n])
			i += n
		}
	}
	return b.String()
}

// chunkReader hands out its text in pieces of random size: 1 to max bytes,
// never more than asked.
type chunkReader struct {
	s   string
	rng *rand.Rand
	max int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.s) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := min(1+c.rng.IntN(c.max), len(p), len(c.s))
	copy(p, c.s[:n])
	c.s = c.s[n:]
	return n, nil
}

func (c *chunkReader) Close() error { return nil }

// chunkMax picks the largest chunk: tiny, small or larger than a whole
// redactBatch batch.
func chunkMax(rng *rand.Rand) int {
	return [...]int{1, 7, 64, 1 << 10, 3 * redactBatch, 40 << 10}[rng.IntN(6)]
}

// readChunks reads r to its end with buffers of random size. A panic in r
// is returned as an error, so that a crasher seed fails its own test
// instead of the whole package's.
func readChunks(r io.Reader, rng *rand.Rand) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	buf := make([]byte, chunkMax(rng))
	for {
		n, err := r.Read(buf[:1+rng.IntN(len(buf))])
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// FuzzRedactingReader checks the masking of upstream error bodies against
// its contract, the whole-string secret.Redactor.Redact: for any text built
// from pool keys (whole or cut off), filler and arbitrary bytes, delivered
// by upstream in chunks of random size and read by the client with buffers
// of random size,
//
//   - redactingReader (the streaming path for bodies too long to read
//     whole, with or without an already-read head) yields exactly
//     Redact(text);
//   - redactErrorBody (the whole-body path, since the text is under
//     maxRedactWhole) yields exactly Redact(text);
//   - no pool key appears raw in either output.
//
// Every pool key is far shorter than redactBatch.
func FuzzRedactingReader(f *testing.F) {
	for _, s := range []struct {
		script []byte
		seed   uint64
	}{
		{nil, 0},
		{[]byte{0}, 1},
		{[]byte("\x03{\"error\":\x00\x03\"}"), 2},
		{[]byte{0xfe, 0x00, 0x04, 0xfe, 0x08, 0x0c, 0x10, 0x14}, 3},
		{[]byte{0xfe, 0xfe, 0x00, 0xfe, 0x11, 0x20, 0x14}, 4},
		{[]byte{0xfa, 0xfe, 0x10, 0x7a, 0x14, 0xfe, 0x01, 0x07}, 5},
		{bytes.Repeat([]byte{0xfe, 0x14, 0x32, 0x10}, 8), 7},
	} {
		f.Add(s.script, s.seed)
	}
	keys := make([]secret.Key, len(fuzzPoolKeys))
	for i, k := range fuzzPoolKeys {
		keys[i] = secret.New(k)
	}
	red := secret.NewRedactor(keys)
	f.Fuzz(func(t *testing.T, script []byte, seed uint64) {
		text := redactText(script, fuzzPoolKeys)
		want := red.Redact(text)
		rng := rand.New(rand.NewPCG(seed, seed>>32^0x9e3779b97f4a7c15))
		check := func(path string, got []byte, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: read error %v", path, err)
			}
			for _, k := range fuzzPoolKeys {
				if bytes.Contains(got, []byte(k)) {
					t.Fatalf("%s: output holds the raw key %s (text %d bytes)", path, secret.Mask(k), len(text))
				}
			}
			if string(got) != want {
				i := 0
				for i < len(got) && i < len(want) && got[i] == want[i] {
					i++
				}
				t.Fatalf("%s: output (%d bytes) differs from Redact (%d bytes) at byte %d:\n got  …%q…\n want …%q…",
					path, len(got), len(want), i, excerpt(string(got), i), excerpt(want, i))
			}
		}

		// Streaming, as for a body longer than maxRedactWhole: some head
		// already read whole, the rest from upstream in chunks.
		head := 0
		if len(text) > 0 && rng.IntN(2) == 0 {
			head = rng.IntN(len(text) + 1)
		}
		rr := &redactingReader{
			src:     &chunkReader{s: text[head:], rng: rng, max: chunkMax(rng)},
			r:       red,
			pending: []byte(text[:head]),
		}
		got, err := readChunks(rr, rng)
		check("redactingReader", got, err)

		// Whole, as for any error body up to maxRedactWhole.
		resp := &http.Response{
			StatusCode:    400 + rng.IntN(200),
			Header:        http.Header{"Content-Type": {"application/json"}},
			Body:          &chunkReader{s: text, rng: rng, max: chunkMax(rng)},
			ContentLength: -1,
		}
		redactErrorBody(resp, red)
		got, err = readChunks(resp.Body, rng)
		check("redactErrorBody", got, err)
	})
}

// excerpt is s around byte i.
func excerpt(s string, i int) string {
	lo, hi := max(0, i-40), min(len(s), i+40)
	return s[lo:hi]
}
