package admin

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// LogReloaded writes the console line of a reload that took:
// "🔁 Key pool reloaded: 5 keys (+1 added, −1 removed, 4 kept)", and when
// kept keys changed ids ", 2 renumbered: #2→#1, #3→#2". source says what
// asked for it ("file", "sighup", "admin").
func LogReloaded(log *slog.Logger, r ReloadResult, source string) {
	msg := "🔁 Key pool reloaded: " + keysWord(r.Keys) + " (+" + strconv.Itoa(len(r.Added)) + " added, −" +
		strconv.Itoa(len(r.Removed)) + " removed, " + strconv.Itoa(len(r.Kept)) + " kept)"
	attrs := []any{"event", "pool_reloaded", "source", source, "keys", r.Keys, "added", ids(r.Added), "removed", ids(r.Removed), "kept", ids(r.Kept)}
	if len(r.Renumbered) > 0 {
		msg += ", " + strconv.Itoa(len(r.Renumbered)) + " renumbered: " + moves(r.Renumbered)
		attrs = append(attrs, "renumbered", r.Renumbered)
	}
	log.Info(msg, attrs...)
}

// ids is a list of key ids as the answer and the JSON log write it: [] for
// none, not null.
func ids(l []int) []int {
	if l == nil {
		return []int{}
	}
	return l
}

// maxMoves is how many renumbered keys the reload line names; the attribute
// has them all.
const maxMoves = 8

// moves words renumbered keys as "#2→#1, #3→#2".
func moves(ms []Move) string {
	var b strings.Builder
	for i, m := range ms {
		if i == maxMoves {
			b.WriteString(", …")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("#" + strconv.Itoa(m.From) + "→#" + strconv.Itoa(m.To))
	}
	return b.String()
}

// LogReloadRefused writes the warning of a refused reload; the pool keeps
// its keys keys.
func LogReloadRefused(log *slog.Logger, reason string, keys int, source string) {
	log.Warn("⚠️ Key pool reload refused, keeping "+keysWord(keys)+": "+reason,
		"event", "pool_reload_refused", "source", source, "reason", reason, "keys", keys)
}

// keysWord is "1 key" or "n keys".
func keysWord(n int) string {
	if n == 1 {
		return "1 key"
	}
	return strconv.Itoa(n) + " keys"
}

// LogDisabled writes "🚫 API Key #3 disabled by admin".
func LogDisabled(log *slog.Logger, id int) {
	log.Info("🚫 API Key #"+strconv.Itoa(id)+" disabled by admin", "event", "key_disabled", "key_id", id)
}

// LogEnabled writes "✅ API Key #3 enabled by admin".
func LogEnabled(log *slog.Logger, id int) {
	log.Info("✅ API Key #"+strconv.Itoa(id)+" enabled by admin", "event", "key_enabled", "key_id", id)
}

// ReloadCounter is keygate_pool_reloads_total{result}: reloads that took
// ("ok") and files refused ("refused").
type ReloadCounter struct{ ok, refused prometheus.Counter }

// NewReloadCounter registers keygate_pool_reloads_total on reg, both
// results at 0 from the start so that a rate() sees the first refusal.
func NewReloadCounter(reg prometheus.Registerer) (*ReloadCounter, error) {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keygate_pool_reloads_total",
		Help: "Key pool reloads (KEYS_FILE change, SIGHUP, POST /admin/reload), by result: ok, or refused (the file did not parse or held no key; the last good pool stayed).",
	}, []string{"result"})
	if err := reg.Register(v); err != nil {
		return nil, fmt.Errorf("registering keygate_pool_reloads_total: %w", err)
	}
	return &ReloadCounter{ok: v.WithLabelValues("ok"), refused: v.WithLabelValues("refused")}, nil
}

// Count records one reload: refused when r.Refused is set.
func (c *ReloadCounter) Count(r ReloadResult) {
	if r.Refused != "" {
		c.refused.Inc()
		return
	}
	c.ok.Inc()
}
