package relay_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
)

func BenchmarkDo(b *testing.B) {
	answer := []byte(`{"id":"x","choices":[{"message":{"content":"ok"}}]}`)
	e := newEnv(b, envOptions{keys: 8, bare: true}, func(w http.ResponseWriter, r *http.Request, id int) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	})
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, e.url, nil)
			if err != nil {
				b.Error(err)
				return
			}
			resp, err := e.relay.Do(req, body, &relay.Call{Strategy: keyring.RoundRobin{}})
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkStreamFirstEvent is a streamed call up to its first event,
// with the stream hold and without: the difference is what the hold adds
// to the time to first byte when upstream's first event comes at once.
func BenchmarkStreamFirstEvent(b *testing.B) {
	for _, bc := range []struct {
		name string
		hold time.Duration
	}{{"hold", 0}, {"no hold", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, envOptions{keys: 8, bare: true, hold: bc.hold}, streams(nil, nil))
			buf := make([]byte, 512)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				resp, err := e.relay.Do(e.request(b, context.Background()), nil, &relay.Call{Strategy: keyring.RoundRobin{}})
				if err != nil {
					b.Fatal(err)
				}
				if n, err := resp.Body.Read(buf); n == 0 && err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
