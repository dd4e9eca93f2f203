package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestRunRejectsBadInput sends every kind of bad /run request: each gets a
// 4xx with {"error": "..."} naming what is wrong, and upstream is never
// called.
func TestRunRejectsBadInput(t *testing.T) {
	keys := testKeys(2)
	up := newChatUpstream(t, keys)
	gw := startGateway(t, up.Base(), keys, "MAX_BODY_BYTES=4096")
	models33 := `["m/0"` + strings.Repeat(`,"m/x"`, 32) + `]`
	big := `{"prompt":"` + strings.Repeat("a", 5000) + `","models":["m/a"]}`

	for _, tc := range []struct {
		name, body string
		status     int
		want       string // in the error text
	}{
		{"empty body", ``, 400, "body"},
		{"blank body", "  \n", 400, "body"},
		{"not JSON", `prompt=hi&models=a`, 400, "JSON"},
		{"truncated JSON", `{"prompt": "hi", "models": [`, 400, "JSON"},
		{"trailing garbage", `{"prompt":"hi","models":["m/a"]} x`, 400, "JSON"},
		{"two objects", `{"prompt":"hi","models":["m/a"]}{}`, 400, "JSON"},
		{"array", `[{"prompt":"hi","models":["m/a"]}]`, 400, "object"},
		{"string", `"hi"`, 400, "object"},
		{"number", `42`, 400, "object"},
		{"null", `null`, 400, "object"},
		{"true", `true`, 400, "object"},
		{"missing prompt", `{"models":["m/a"]}`, 400, `"prompt"`},
		{"null prompt", `{"prompt":null,"models":["m/a"]}`, 400, `"prompt"`},
		{"empty prompt", `{"prompt":"","models":["m/a"]}`, 400, `"prompt"`},
		{"blank prompt", `{"prompt":" \t\n","models":["m/a"]}`, 400, `"prompt"`},
		{"number prompt", `{"prompt":42,"models":["m/a"]}`, 400, `"prompt"`},
		{"array prompt", `{"prompt":["hi"],"models":["m/a"]}`, 400, `"prompt"`},
		{"object prompt", `{"prompt":{"text":"hi"},"models":["m/a"]}`, 400, `"prompt"`},
		{"missing models", `{"prompt":"hi"}`, 400, `"models"`},
		{"null models", `{"prompt":"hi","models":null}`, 400, `"models"`},
		{"empty models", `{"prompt":"hi","models":[]}`, 400, `"models"`},
		{"string models", `{"prompt":"hi","models":"m/a"}`, 400, `"models"`},
		{"object models", `{"prompt":"hi","models":{"0":"m/a"}}`, 400, `"models"`},
		{"number models", `{"prompt":"hi","models":1}`, 400, `"models"`},
		{"number in models", `{"prompt":"hi","models":["m/a",1]}`, 400, `"models[1]"`},
		{"null in models", `{"prompt":"hi","models":[null]}`, 400, `"models[0]"`},
		{"object in models", `{"prompt":"hi","models":["m/a","m/b",{"id":"m/c"}]}`, 400, `"models[2]"`},
		{"array in models", `{"prompt":"hi","models":[["m/a"]]}`, 400, `"models[0]"`},
		{"empty string in models", `{"prompt":"hi","models":["m/a",""]}`, 400, `"models[1]"`},
		{"blank string in models", `{"prompt":"hi","models":["  "]}`, 400, `"models[0]"`},
		{"33 models", `{"prompt":"hi","models":` + models33 + `}`, 400, `"models"`},
		{"string random_key", `{"prompt":"hi","models":["m/a"],"random_key":"true"}`, 400, `"random_key"`},
		{"number random_key", `{"prompt":"hi","models":["m/a"],"random_key":1}`, 400, `"random_key"`},
		{"object random_key", `{"prompt":"hi","models":["m/a"],"random_key":{}}`, 400, `"random_key"`},
		{"array params", `{"prompt":"hi","models":["m/a"],"params":[]}`, 400, `"params"`},
		{"string params", `{"prompt":"hi","models":["m/a"],"params":"temperature=1"}`, 400, `"params"`},
		{"number params", `{"prompt":"hi","models":["m/a"],"params":0.7}`, 400, `"params"`},
		{"bool params", `{"prompt":"hi","models":["m/a"],"params":true}`, 400, `"params"`},
		{"body over MAX_BODY_BYTES", big, 413, "MAX_BODY_BYTES"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := postRun(t, gw, []byte(tc.body))
			checkRunError(t, resp, body, tc.status, tc.want)
		})
	}

	t.Run("chunked body over MAX_BODY_BYTES", func(t *testing.T) {
		req := newRequest(t, http.MethodPost, gw.URL+"/run", nil)
		req.Body = io.NopCloser(strings.NewReader(big)) // no length: sent chunked
		req.ContentLength = -1
		resp, body := do(t, req)
		checkRunError(t, resp, body, 413, "MAX_BODY_BYTES")
	})

	if n := len(up.Calls()); n != 0 {
		t.Fatalf("bad input made %d upstream calls, want none", n)
	}
	// The gateway still works: the 400s were the input's fault.
	if out := runOK(t, gw, "hi", []string{"m/a"}, nil); out.Successful != 1 {
		t.Fatalf("valid request after bad ones: %+v", out)
	}
}

// TestRunAcceptsEdgeInput: inputs at the edge of valid are served.
func TestRunAcceptsEdgeInput(t *testing.T) {
	keys := testKeys(2)
	up := newChatUpstream(t, keys)
	gw := startGateway(t, up.Base(), keys)
	models32 := `["m/0"` + strings.Repeat(`,"m/x"`, 31) + `]`
	for _, tc := range []struct{ name, body string }{
		{"32 models", `{"prompt":"hi","models":` + models32 + `}`},
		{"null random_key and params", `{"prompt":"hi","models":["m/a"],"random_key":null,"params":null}`},
		{"empty params", `{"prompt":"hi","models":["m/a"],"params":{}}`},
		{"unknown field", `{"prompt":"hi","models":["m/a"],"mystery":true}`},
		{"white space around", " \n{\"prompt\":\"hi\",\"models\":[\"m/a\"]}\n "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := postRun(t, gw, []byte(tc.body))
			var out runReply
			if resp.StatusCode != 200 || json.Unmarshal(body, &out) != nil || out.Failed != 0 || out.Successful != out.TotalModels {
				t.Fatalf("status %d body %s; want 200, every model answered", resp.StatusCode, body)
			}
		})
	}
	if n := len(up.Calls()); n != 32+4 {
		t.Fatalf("upstream got %d calls, want 36", n)
	}
}

func TestRunOtherMethods(t *testing.T) {
	keys := testKeys(1)
	up := newChatUpstream(t, keys)
	gw := startGateway(t, up.Base(), keys)
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		resp, body := do(t, newRequest(t, method, gw.URL+"/run", nil))
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("%s /run: status %d body %s, want 405", method, resp.StatusCode, body)
		}
		if !strings.Contains(resp.Header.Get("Allow"), http.MethodPost) {
			t.Errorf("%s /run: Allow %q, want it to list POST", method, resp.Header.Get("Allow"))
		}
		checkRunError(t, resp, body, 405, "method")
	}
	if n := len(up.Calls()); n != 0 {
		t.Fatalf("upstream got %d calls", n)
	}
}

// checkRunError checks a /run error answer: the status, and a JSON body that
// is exactly {"error": "<text containing want>"}.
func checkRunError(t testing.TB, resp *http.Response, body []byte, status int, want string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want JSON", ct)
	}
	var e map[string]any
	if err := json.Unmarshal(body, &e); err != nil || len(e) != 1 {
		t.Fatalf("body %s, want exactly {\"error\": \"...\"}", body)
	}
	msg, ok := e["error"].(string)
	if !ok || !strings.Contains(msg, want) {
		t.Fatalf("error %v, want a text naming %s", e["error"], want)
	}
}
