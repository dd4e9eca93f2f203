package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/keygate/keygate/gctune"
)

// StartDebug serves Go's profiler (net/http/pprof, under /debug/pprof/) on
// addr, the PPROF_ADDR setting, which config only accepts on loopback. It is
// off unless set: profiles show internals and cost CPU while taken. It also
// serves POST /debug/free-memory, which collects and hands the heap's free
// memory back to the system at once: the resident size then shows what the
// process holds rather than garbage and pages the runtime would return
// later, which is what measuring memory per stream needs. The returned stop
// closes the listener.
func StartDebug(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("PPROF_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("POST /debug/free-memory", FreeMemory)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof listener stopped", "event", "pprof_stopped", "err", err)
		}
	}()
	log.Info("🩺 Profiler on http://"+ln.Addr().String()+"/debug/pprof/", "event", "pprof", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// FreeMemory answers POST /debug/free-memory: gctune.FreeMemory, then 204.
func FreeMemory(w http.ResponseWriter, _ *http.Request) {
	gctune.FreeMemory()
	w.WriteHeader(http.StatusNoContent)
}
