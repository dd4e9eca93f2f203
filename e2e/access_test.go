package e2e

import (
	"bufio"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// accessLines are the access lines of the console after mark.
func accessLines(gw *gateway, mark int) []string {
	var out []string
	for _, l := range logSince(gw, mark) {
		if strings.HasPrefix(l, "↪️ ") && strings.Contains(l, " → ") {
			out = append(out, l)
		}
	}
	return out
}

// TestAccessLineAfterStream: a stream's access line is written when the
// stream ends, with the tokens of its last event; none is written while
// it runs.
func TestAccessLineAfterStream(t *testing.T) {
	release := make(chan struct{})
	up, _ := ptUpstream(t, func(w http.ResponseWriter, _ *http.Request, _ ptSeen) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n")
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":8}}\n\ndata: [DONE]\n\n")
	})
	gw := startGateway(t, up.URL+"/api/v1", testKeys(2), "LOG_LEVEL=info")
	mark := len(gw.Logs.String())
	resp, err := http.Post(gw.URL+"/api/v1/chat/completions", "application/json", strings.NewReader(hdChat("s/m", true)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if ev, err := ptReadEvent(r); err != nil || !strings.Contains(ev, `"hi"`) {
		t.Fatalf("first event %q: %v", ev, err)
	}
	if lines := accessLines(gw, mark); len(lines) != 0 {
		t.Fatalf("access line while the stream runs: %q", lines)
	}
	close(release)
	if _, err := io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	ptEventually(t, "the access line", func() bool { return len(accessLines(gw, mark)) > 0 })
	lines := accessLines(gw, mark)
	re := regexp.MustCompile(`^↪️ POST /api/v1/chat/completions s/m → 200 in \d+\.\d\ds \(key #[12], 13 tokens\)$`)
	if len(lines) != 1 || !re.MatchString(lines[0]) {
		t.Fatalf("access lines %q, want one matching %s", lines, re)
	}
}

// TestAccessLineLevels: LOG_LEVEL=info (the default) writes one access
// line per passthrough request; warn writes none.
func TestAccessLineLevels(t *testing.T) {
	for _, tc := range []struct {
		level string
		want  int
	}{{"info", 3}, {"warn", 0}} {
		t.Run(tc.level, func(t *testing.T) {
			up, _ := ptUpstream(t, ptOK)
			gw := startGateway(t, up.URL+"/api/v1", testKeys(2), "LOG_LEVEL="+tc.level)
			mark := len(gw.Logs.String())
			for _, path := range []string{"/v1/models", "/api/v1/models", "/v1/chat/completions"} {
				resp, body := do(t, newRequest(t, http.MethodGet, gw.URL+path, nil))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
				}
			}
			if tc.want > 0 {
				ptEventually(t, "the access lines", func() bool { return len(accessLines(gw, mark)) >= tc.want })
			}
			ptIdle(t, gw) // every request over, its line written or not
			if got := accessLines(gw, mark); len(got) != tc.want {
				t.Fatalf("%d access lines, want %d: %q", len(got), tc.want, got)
			}
		})
	}
}
