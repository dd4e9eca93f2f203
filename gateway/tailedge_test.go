package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

// bigCompleted is a Responses stream whose response.completed is over
// maxUsageScan, its usage near its end (as OpenAI's field order has it).
func bigCompleted(sep, end string) string {
	text := strings.Repeat("x", 300<<10)
	return "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\",\"usage\":null}}\n\n" +
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"" + text + "\"}]}]," +
		"\"usage\"" + sep + "{\"input_tokens\":11,\"output_tokens\":7,\"total_tokens\":18},\"user\":null,\"metadata\":{}}}" + end
}

func tapTokens(t *testing.T, body string, chunk int) *tokRec {
	t.Helper()
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(strings.NewReader(body))}
	rec := &tokRec{}
	tapUsage(resp, rec, 1, "m")
	var r io.Reader = resp.Body
	if chunk > 0 {
		r = iotest.HalfReader(resp.Body)
	}
	_, _ = io.ReadAll(r)
	resp.Body.Close()
	return rec
}

func TestTailUsageEdges(t *testing.T) {
	for _, tc := range []struct {
		name, body string
	}{
		{"ended by a blank line", bigCompleted(":", "\n\n")},
		// The last event of a stream that ends before its blank line
		// counts when it is short (endEvent): upstream billed it.
		{"stream ends before the blank line", bigCompleted(":", "\n")},
		{"stream ends at the data line", bigCompleted(":", "")},
		// JSON from a server that writes ": " between a key and its
		// value (Python's json.dumps): topLevel reads such a short event.
		{"a blank after the colon", bigCompleted(": ", "\n\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{0, 1} {
				if rec := tapTokens(t, tc.body, chunk); rec.prompt != 11 || rec.completion != 7 {
					t.Errorf("half reads %v: tokens %d, %d; want 11, 7", chunk == 1, rec.prompt, rec.completion)
				}
			}
		})
	}
}

// chunks reads its pieces one per Read.
type chunks [][]byte

func (c *chunks) Read(p []byte) (int, error) {
	if len(*c) == 0 {
		return 0, io.EOF
	}
	n := copy(p, (*c)[0])
	if n == len((*c)[0]) {
		*c = (*c)[1:]
	} else {
		(*c)[0] = (*c)[0][n:]
	}
	return n, nil
}

// TestTailUsageJustOverTheBound: an event a few bytes over maxUsageScan
// is found long only by the read that brings its last bytes; the usage
// object came in the read before, and the tail must still hold it.
func TestTailUsageJustOverTheBound(t *testing.T) {
	head := "data: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\""
	usage := "\"},\"usage\":{\"input_tokens\":11,\"output_tokens\":7,\"total_tokens\":18},\"user\":null,\"metadata\":{}}}"
	line := head + strings.Repeat("x", maxUsageScan+20-len(head)-len(usage)) + usage
	if len(line) != maxUsageScan+20 {
		t.Fatal(len(line))
	}
	// As HTTP/2 frames may cut it: all but the last 20 bytes, then those.
	c := chunks{[]byte(line[:maxUsageScan]), []byte(line[maxUsageScan:] + "\n\n")}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(&c)}
	rec := &tokRec{}
	tapUsage(resp, rec, 1, "m")
	buf := make([]byte, maxUsageScan+64)
	for {
		if _, err := resp.Body.Read(buf); err != nil {
			break
		}
	}
	resp.Body.Close()
	if rec.prompt != 11 || rec.completion != 7 {
		t.Errorf("tokens %d, %d; want 11, 7", rec.prompt, rec.completion)
	}
}
