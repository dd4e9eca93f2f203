package gateway

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestTapKeepsNoAnswerThatIsNoObject: a JSON answer whose first byte past
// blanks opens no object holds no usage, and the tap keeps none of it; it
// kept maxUsageScan of each, so that 100 decoded gzip bombs (8 MiB of
// zeros each) at once held 25 MiB and more. An object, blanks before it
// and split over reads, is read as ever.
func TestTapKeepsNoAnswerThatIsNoObject(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		kept   bool
		tokens int
	}{
		{"zeros", strings.Repeat("\x00", 1<<20), false, 0},
		{"an array", "[" + strings.Repeat(`{"usage":{"prompt_tokens":1}},`, 1000) + "{}]", false, 0},
		{"an object after blanks", "  \n" + `{"id":"x","usage":{"prompt_tokens":4,"completion_tokens":2}}`, true, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(tc.body))}
			rec := &tokRec{}
			tapUsage(resp, rec, 1, "m")
			tap := resp.Body.(*usageTap)
			var out bytes.Buffer
			buf := make([]byte, 3) // the first reads are blanks only
			for {
				n, err := resp.Body.Read(buf)
				out.Write(buf[:n])
				if err != nil {
					break
				}
				if len(buf) < 32<<10 {
					buf = make([]byte, 32<<10)
				}
			}
			if kept := tap.buf.Len() > 0; kept != tc.kept {
				t.Errorf("kept %d bytes of the answer, want kept %v", tap.buf.Len(), tc.kept)
			}
			resp.Body.Close()
			if out.String() != tc.body {
				t.Fatal("the answer did not pass whole")
			}
			if rec.prompt+rec.completion != tc.tokens {
				t.Errorf("tokens %d + %d, want %d", rec.prompt, rec.completion, tc.tokens)
			}
		})
	}
}
