package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// usageCount is one TokenCounter.Tokens call.
type usageCount struct{ prompt, completion int }

type usageRecorder []usageCount

func (u *usageRecorder) Tokens(_ int, _ string, prompt, completion int) {
	*u = append(*u, usageCount{prompt, completion})
}

// onceReader hands out all of its text in its first Read, with io.EOF.
type onceReader struct{ s string }

func (o *onceReader) Read(p []byte) (int, error) {
	n := copy(p, o.s)
	o.s = o.s[n:]
	if len(o.s) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// tapCounts passes body through tapUsage as a 200 answer of the given kind
// and returns the counts recorded after the client read it to the end and
// closed it. With rng nil the body comes in one piece and is read with one
// buffer large enough for all of it; otherwise upstream delivers it in
// chunks of random size and the client reads with buffers of random size.
// A panic is reported as a test failure.
func tapCounts(t *testing.T, body string, stream bool, rng *rand.Rand) (counts []usageCount) {
	t.Helper()
	ct := "application/json"
	if stream {
		ct = "text/event-stream"
	}
	var src io.Reader = &onceReader{s: body}
	if rng != nil {
		src = &chunkReader{s: body, rng: rng, max: chunkMax(rng)}
	}
	resp := &http.Response{
		StatusCode:    200,
		Header:        http.Header{"Content-Type": {ct}},
		Body:          io.NopCloser(src),
		ContentLength: -1,
	}
	var rec usageRecorder
	var got []byte
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			}
		}()
		tapUsage(resp, &rec, 1, "m")
		if rng == nil {
			buf := make([]byte, len(body)+1)
			n, rerr := resp.Body.Read(buf)
			got = buf[:n]
			for rerr == nil {
				n, rerr = resp.Body.Read(buf)
				got = append(got, buf[:n]...)
			}
			if rerr != io.EOF {
				err = rerr
			}
		} else {
			got, err = readChunks(resp.Body, rng)
		}
		if err == nil {
			err = resp.Body.Close()
		}
	}()
	if err != nil {
		t.Fatalf("tap (split %v): %v", rng != nil, err)
	}
	if string(got) != body {
		t.Fatalf("tap (split %v) changed the body: %d bytes in, %d out", rng != nil, len(body), len(got))
	}
	if len(rec) > 1 {
		t.Fatalf("tap (split %v) counted %d times: %v", rng != nil, len(rec), rec)
	}
	return rec
}

// FuzzUsageTapChunks feeds arbitrary answers, JSON or SSE, through the
// usage tap. Properties: it never panics, passes the body on unchanged,
// counts at most once, and counts the same whether the answer comes whole
// or in chunks of random size read with buffers of random size: where the
// network cuts an answer must not change what is billed.
func FuzzUsageTapChunks(f *testing.F) {
	sse := "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n" +
		"data: [DONE]\n\n"
	for _, s := range []struct {
		body   string
		stream bool
	}{
		{`{"id":"x","usage":{"prompt_tokens":5,"completion_tokens":2}}`, false},
		{`{"usage":{"prompt_tokens":0,"completion_tokens":0}}`, false},
		{`{"usage":{"prompt_tokens":-3,"completion_tokens":"2"}}`, false},
		{`{"usage":{"prompt_tokens":null,"completion_tokens":4`, false},
		{`  {"usage" : { "completion_tokens" : 9 } }  `, false},
		{`{"usage":[1]}`, false},
		{sse, true},
		{strings.ReplaceAll(sse, "\n", "\r\n"), true},
		{": OPENROUTER PROCESSING\n\n" + sse, true},
		{"data:{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}", true},
		{"data: {\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":2}}\ndata: {\"usage\":null}\n", true},
		{"data: {\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":2}}\n\ndata: {\"x\":\"usage\"}\n\n", true},
		{"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":2}}}\n\n", true},
		{"\n\n\ndata:\n", true},
		{`{"usage":{"prompt_tokens":5,"completion_tokens":2}}`, true},
		{"  \r\n\t{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n", true},
		{"  data: {\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n", true},
		{"", true},
		{"", false},
	} {
		f.Add([]byte(s.body), s.stream, uint64(len(s.body)))
	}
	f.Fuzz(func(t *testing.T, body []byte, stream bool, seed uint64) {
		whole := tapCounts(t, string(body), stream, nil)
		split := tapCounts(t, string(body), stream, rand.New(rand.NewPCG(seed, ^seed)))
		if !slices.Equal(whole, split) {
			t.Fatalf("counted %v whole, %v split (stream %v)", whole, split, stream)
		}
	})
}

// usageAnswer builds a well-formed answer carrying a usage object: a JSON
// completion, or an SSE stream of content deltas, then a usage chunk, then
// [DONE]. pad bytes of filler are added inside the object that carries the
// usage. It returns the answer and the length of its longest line.
func usageAnswer(prompt, completion int, content string, pad int, stream, crlf bool) (string, int) {
	quoted := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	usage := fmt.Sprintf(`"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}`,
		prompt, completion, prompt+completion)
	padding := ""
	if pad > 0 {
		padding = `,"provider":` + quoted(strings.Repeat("p", pad))
	}
	if !stream {
		doc := `{"id":"gen-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":` +
			quoted(content) + `},"finish_reason":"stop"}],` + usage + padding + "}"
		return doc, len(doc)
	}
	nl := "\n"
	if crlf {
		nl = "\r\n"
	}
	var b strings.Builder
	longest := 0
	line := func(s string) {
		longest = max(longest, len(s))
		b.WriteString(s + nl)
	}
	line(": OPENROUTER PROCESSING")
	b.WriteString(nl)
	for piece := range strings.SplitSeq(content, "\n") {
		line(`data: {"id":"gen-1","choices":[{"index":0,"delta":{"content":` + quoted(piece) + `}}]}`)
		b.WriteString(nl)
	}
	line(`data: {"id":"gen-1","choices":[],` + usage + padding + `}`)
	b.WriteString(nl)
	line("data: [DONE]")
	b.WriteString(nl)
	return b.String(), longest + len(nl)
}

// FuzzUsageTapSplit builds answers around a valid usage object and checks
// that the tap counts exactly that usage (when the answer is within the
// documented limits: a JSON answer of at most maxUsageScan bytes or whose
// usage is in its last usageTail, SSE lines of at most maxUsageScan
// bytes), and that, at any size, it counts the same
// whether the answer comes whole or split at random chunk boundaries.
func FuzzUsageTapSplit(f *testing.F) {
	for _, s := range []struct {
		prompt, completion uint64
		content            string
		pad                uint16
		stream, crlf       bool
		seed               uint64
	}{
		{7, 3, "hi", 0, true, false, 1},
		{7, 3, "hi", 0, false, false, 2},
		{0, 0, "", 0, true, true, 3},
		{1, 0, "line one\nline two\n\ndata: {\"usage\":{\"prompt_tokens\":99}}", 0, true, true, 4},
		{123456789012, 5, "€ \u2028 \"usage\"", 100, false, false, 5},
		{0, 42, strings.Repeat("x", 1000), 2000, true, false, 6},
		// Just under maxUsageScan: the answer, or its usage line, fits.
		{9, 1, "near the limit", maxUsageScan/5 - 40, false, false, 7},
		{9, 1, "near the limit", maxUsageScan/5 - 40, true, true, 8},
		// Past it: the usage is read from the tail, unless too much
		// comes after it.
		{9, 1, strings.Repeat("long ", maxUsageScan/5), 100, false, false, 9},
		{9, 1, strings.Repeat("long ", maxUsageScan/5), usageTail / 5, false, false, 10},
	} {
		f.Add(s.prompt, s.completion, s.content, s.pad, s.stream, s.crlf, s.seed)
	}
	f.Fuzz(func(t *testing.T, prompt, completion uint64, content string, pad uint16, stream, crlf bool, seed uint64) {
		p, c := int(prompt%1e12), int(completion%1e12)
		// pad spans 0 to a little over maxUsageScan (327,675 bytes).
		body, longest := usageAnswer(p, c, content, int(pad)*5, stream, crlf)
		whole := tapCounts(t, body, stream, nil)
		// A larger JSON answer is read from its last usageTail bytes:
		// the usage key and the comma before it must be in them.
		within := len(body) <= maxUsageScan || len(body)-strings.LastIndex(body, `"usage":{`)+1 <= usageTail
		if stream {
			within = longest <= maxUsageScan
		}
		if within {
			var want []usageCount
			if p > 0 || c > 0 {
				want = []usageCount{{p, c}}
			}
			if !slices.Equal(whole, want) {
				t.Fatalf("counted %v, want %v (stream %v, %d bytes)", whole, want, stream, len(body))
			}
		}
		rng := rand.New(rand.NewPCG(seed, ^seed))
		if split := tapCounts(t, body, stream, rng); !slices.Equal(split, whole) {
			t.Fatalf("counted %v split, %v whole (stream %v, %d bytes, longest line %d)", split, whole, stream, len(body), longest)
		}
	})
}
