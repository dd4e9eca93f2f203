package app

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"testing"
)

func TestStartDebugServesPprofOnLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	stop, err := StartDebug(addr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// free-memory takes POST only: a crawler's GET must not run a GC.
	for _, tc := range []struct {
		method string
		want   int
	}{{http.MethodPost, http.StatusNoContent}, {http.MethodGet, http.StatusMethodNotAllowed}} {
		req, _ := http.NewRequest(tc.method, "http://"+addr+"/debug/free-memory", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("%s /debug/free-memory: status %d, want %d", tc.method, resp.StatusCode, tc.want)
		}
	}
	stop()
	if _, err := http.Get("http://" + addr + "/debug/pprof/"); err == nil {
		t.Fatal("still serving after stop")
	}
	if _, err := StartDebug("127.0.0.1:-1", slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		t.Fatal("bad address accepted")
	}
}
