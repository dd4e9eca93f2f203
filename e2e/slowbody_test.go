package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/simulator"
)

// TestSlowBodyIsCutOff: a client that sends its headers and then trickles
// its body holds a MAX_IN_FLIGHT slot only until READ_BODY_TIMEOUT. It gets
// a 408 with a JSON error, nothing reaches upstream, and the slot is free
// again for the next client. Both routes that read a body are covered.
func TestSlowBodyIsCutOff(t *testing.T) {
	for _, tt := range []struct {
		route, path string
		wantJSON    string
	}{
		{"passthrough", "/v1/chat/completions", `"type":"invalid_request_error"`},
		{"run", "/run", `{"error":"request body not received in time`},
	} {
		t.Run(tt.route, func(t *testing.T) {
			clk := newClock()
			keys := hdKeys(2)
			sim := hdSim(t, clk, map[string]simulator.Profile{keys[0]: {}, keys[1]: {}})
			g := hdStart(t, sim.BaseURL(), keys, clk, "MAX_IN_FLIGHT=1", "READ_BODY_TIMEOUT=200ms")

			conn, err := net.Dial("tcp", strings.TrimPrefix(g.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// A generous bound that only keeps a broken gateway from
			// hanging the test; the body timeout is what must answer.
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			head := "POST " + tt.path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
			if _, err := conn.Write([]byte(head)); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("the slow body was never answered: %v", err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			body := string(b)
			if err != nil {
				t.Fatalf("reading the 408: %v", err)
			}
			if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(body, tt.wantJSON) {
				t.Fatalf("slow body: %d %s, want 408 with %s", resp.StatusCode, body, tt.wantJSON)
			}
			if n := sim.Stats().Total; n != 0 {
				t.Errorf("upstream saw %d requests from a body that never arrived", n)
			}

			// The one slot is free again.
			r := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("m/a", false)))
			if r.Status != http.StatusOK {
				t.Fatalf("next client got %d %s, want 200: the slot stayed taken", r.Status, r.Body)
			}
		})
	}
}
