package gateway

import (
	"net/http/httptest"
	"testing"
)

// TestStreamHeadFlushed: a stream's status and headers go out as soon as
// they are written (from a shallow frame, see clientWriter.WriteHeader);
// other answers' wait for their body.
func TestStreamHeadFlushed(t *testing.T) {
	for _, tc := range []struct {
		ctype string
		code  int
		flush bool
	}{
		{"text/event-stream", 200, true},
		{"Text/Event-Stream; charset=utf-8", 200, true},
		{"application/json", 200, false},
		{"text/event-stream", 502, false},
		{"", 200, false},
	} {
		rec := httptest.NewRecorder()
		cw := newClientWriter(rec, nil, 0, nil)
		if tc.ctype != "" {
			cw.Header().Set("Content-Type", tc.ctype)
		}
		cw.WriteHeader(tc.code)
		if rec.Flushed != tc.flush || rec.Code != tc.code {
			t.Errorf("%q %d: flushed %v (code %d), want %v", tc.ctype, tc.code, rec.Flushed, rec.Code, tc.flush)
		}
		cw.release()
	}
}
