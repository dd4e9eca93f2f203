package app

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

// TestAccessLineAfterReload: the access line of a call that ends after a
// reload names its key as the pool in force does (a renumbered key by its
// new id, as its metrics count it), and a key the reload removed by its
// masked secret, never by the id that now names another key.
func TestAccessLineAfterReload(t *testing.T) {
	tests := []struct {
		name      string
		next      []keyring.Entry
		want, not string
	}{
		{name: "renumbered", next: []keyring.Entry{{ID: 1, Secret: secret.New(liveKeys[2])}, {ID: 2, Secret: secret.New(liveKeys[1])}},
			want: "→ 200 in ", not: "(key #1"},
		{name: "removed", next: entries(2),
			want: "(removed key #1 " + secret.New(liveKeys[1]).String(), not: "(key #1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t)
			a, logs := newLiveApp(t, up.URL, []int{1}, Options{})
			release := up.holdKey(1)
			done := make(chan int, 1)
			go func() { done <- chat(t, a.Handler) }()
			<-up.started
			if res := a.Live.Apply(tt.next, nil, "file"); res.Refused != "" {
				t.Fatalf("reload refused: %s", res.Refused)
			}
			close(release)
			if code := <-done; code != 200 {
				t.Fatalf("call: %d", code)
			}
			var line string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.HasPrefix(l, "↪️ POST /v1/chat/completions") {
					line = l
				}
			}
			if !strings.Contains(line, tt.want) || strings.Contains(line, tt.not) {
				t.Errorf("access line %q, want %q in it and no %q", line, tt.want, tt.not)
			}
			if tt.name == "renumbered" && !strings.Contains(line, "(key #2") {
				t.Errorf("access line %q, want the key's new id #2", line)
			}
		})
	}
}
