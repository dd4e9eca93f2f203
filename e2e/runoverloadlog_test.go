package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestRunOverloadedModelIsNotLoggedAsCalled: a /run model answered
// overloaded (no MAX_IN_FLIGHT slot left for its call) makes no upstream
// call, and the console does not say it did: no "🔑 Using API Key" or
// "⏳ Calling" line (JSON: key_selected, model_call) names it, only its
// ❌ line. A log reader counting calls by those events counted calls that
// never went out.
func TestRunOverloadedModelIsNotLoggedAsCalled(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "streamed"}[stream], func(t *testing.T) {
			up := hnUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"choices":[{"message":{"content":"ok"}}]}`)
			})
			g := hdStart(t, up, hdKeys(4), newClock(), "MAX_IN_FLIGHT=3")
			r := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/run",
				`{"prompt":"hi","stream":`+strconv.FormatBool(stream)+`,"models":["a/1","a/2","a/3","a/4"]}`))
			if r.Status != http.StatusOK || strings.Count(string(r.Body), "MAX_IN_FLIGHT") < 2 {
				t.Fatalf("%d %s; want a/3 and a/4 overloaded", r.Status, r.Body)
			}
			logs := g.Logs.String()
			for _, m := range []string{"a/3", "a/4"} {
				for _, line := range strings.Split(logs, "\n") {
					if strings.Contains(line, m) && (strings.Contains(line, "Using API Key") || strings.Contains(line, "Calling")) {
						t.Errorf("console says an overloaded model was called: %q\n%s", line, logs)
					}
				}
			}
		})
	}
}
