package relay_test

import (
	"context"
	"io"
	"net/http"
	"testing"

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
