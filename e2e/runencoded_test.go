package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRunReadsEncodedErrorAnswer: an upstream that gzips its error
// answer unasked gets it decoded, as README says of every answer: /run's
// entry quotes the error's message, not the compressed bytes.
func TestRunReadsEncodedErrorAnswer(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte(`{"error":{"message":"model not found: x/broken","code":404}}`))
		zw.Close()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		w.WriteHeader(http.StatusNotFound)
		w.Write(buf.Bytes())
	}))
	t.Cleanup(up.Close)
	g := hdStart(t, up.URL, hdKeys(2), newClock())
	for _, stream := range []string{"false", "true"} {
		r := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/run", `{"prompt":"p","models":["x/broken"],"stream":`+stream+`}`))
		body := string(r.Body)
		if stream == "true" {
			i := strings.LastIndex(body, "data: ")
			body = strings.TrimSpace(body[i+len("data: "):])
		}
		var doc runReply
		if err := json.Unmarshal([]byte(body), &doc); err != nil || len(doc.Responses) != 1 {
			t.Fatalf("stream %s: %d %s (%v)", stream, r.Status, r.Body, err)
		}
		if want := "upstream 404: model not found: x/broken"; doc.Responses[0].Error != want {
			t.Errorf("stream %s: error %q, want %q", stream, doc.Responses[0].Error, want)
		}
	}
}
