package simulator

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// discardWriter is a ResponseWriter that keeps nothing, so that the
// benchmark measures the simulator and not a recorder.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }
func (w *discardWriter) Flush()                      {}

// rewindBody is a request body that can be read again after Reset.
type rewindBody struct{ bytes.Reader }

func (*rewindBody) Close() error { return nil }

func benchServe(b *testing.B, body string) {
	s := New(testOptions())
	defer s.Close()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.RunParallel(func(pb *testing.PB) {
		rb := &rewindBody{}
		req, err := http.NewRequest(http.MethodPost, "http://sim"+PathPrefix+"/chat/completions", rb)
		if err != nil {
			b.Error(err)
			return
		}
		req.Header.Set("Authorization", "Bearer "+keyOK)
		req.Header.Set("Content-Type", "application/json")
		w := &discardWriter{h: http.Header{}}
		raw := []byte(body)
		for pb.Next() {
			rb.Reset(raw)
			clear(w.h)
			w.status, w.n = 0, 0
			s.ServeHTTP(w, req)
			if w.status != http.StatusOK || w.n == 0 {
				b.Errorf("status %d, %d bytes", w.status, w.n)
				return
			}
		}
	})
}

// BenchmarkServeHTTP is the success path of a load test: a tiny
// non-streamed completion, in memory.
func BenchmarkServeHTTP(b *testing.B) {
	benchServe(b, `{"model":"openai/gpt-4o","messages":[{"role":"user","content":"Say hi"}]}`)
}

// BenchmarkServeHTTPStream is a tiny streamed completion (4 chunks, no
// delay), in memory.
func BenchmarkServeHTTPStream(b *testing.B) {
	benchServe(b, `{"model":"openai/gpt-4o","stream":true,"messages":[{"role":"user","content":"Say hi"}]}`)
}

// BenchmarkLoopback is the same completion over a real loopback connection
// with keep-alive, client included: an upper bound on what the simulator
// can feed a gateway on this machine.
func BenchmarkLoopback(b *testing.B) {
	s, err := Start(testOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	const body = `{"model":"openai/gpt-4o","messages":[{"role":"user","content":"Say hi"}]}`
	url := s.BaseURL() + "/chat/completions"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+keyOK)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
