package gateway

import "testing"

// TestRunBodySize: the size a /run model's call is leased for is the size
// of the body it is sent with, in both forms.
func TestRunBodySize(t *testing.T) {
	for _, stream := range []bool{false, true} {
		req, err := decodeRunRequest([]byte(`{"prompt":"say <hi> \"there\"","models":["a/b","x/<é>"],"params":{"temperature":0.5}}`), 32)
		if err != nil {
			t.Fatal(err)
		}
		if err := req.buildShared(stream); err != nil {
			t.Fatal(err)
		}
		for _, m := range req.Models {
			body, err := req.chatBodyStream(m, stream)
			if err != nil {
				t.Fatal(err)
			}
			if n := req.bodySize(m); n != len(body) {
				t.Errorf("stream %v, model %q: bodySize %d, body %d bytes", stream, m, n, len(body))
			}
		}
	}
}
