// Command floor serves the benchmark's yardstick proxy (package
// floorproxy) on loopback. `go run ./bench` builds and starts it: it prints
// its address on stdout and serves until killed or its parent exits. The
// key comes from FLOOR_API_KEY, never from a flag, so it stays out of ps.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/keygate/keygate/bench/internal/floorproxy"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	upstream := flag.String("upstream", "", "upstream base URL, e.g. http://127.0.0.1:8080/api/v1")
	pool := flag.Bool("pool", false, "pool the copy buffers (floorproxy.WithPool)")
	debugAddr := flag.String("debug", "", "loopback address serving POST /debug/free-memory, as keygate's PPROF_ADDR does, so that the bench reads both idle sizes settled, and GET /debug/pprof/profile, so that -cpuprofile has the floor's profile to diff keygate's against")
	flag.Parse()
	key := os.Getenv("FLOOR_API_KEY")
	base, err := url.Parse(*upstream)
	if err != nil || base.Host == "" || key == "" {
		fmt.Fprintln(os.Stderr, "floor: need -upstream URL and FLOOR_API_KEY")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	if *debugAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("POST /debug/free-memory", func(w http.ResponseWriter, _ *http.Request) {
			runtime.GC() // as keygate's: the second collection empties the pools
			debug.FreeOSMemory()
			w.WriteHeader(http.StatusNoContent)
		})
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		go func() { _ = http.ListenAndServe(*debugAddr, mux) }()
	}
	proxy := floorproxy.New(base, key, nil)
	if *pool {
		proxy = floorproxy.WithPool(proxy)
	}
	srv := &http.Server{Handler: floorproxy.FullDuplex(proxy), ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}
