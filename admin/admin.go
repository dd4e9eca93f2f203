// Package admin is the operator's API: take a key out of rotation by hand,
// bring it back, poll its budget now, and re-read the key pool. It speaks
// net/http so that the gateway mounts it as it is; what the calls do to the
// pool lies behind the small Pool interface.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/keygate/keygate/access"
	"github.com/keygate/keygate/budget"
	"github.com/keygate/keygate/secret"
)

// Pool is what the admin API needs of the live key pool. Implementations
// are safe for concurrent use.
type Pool interface {
	// Disable takes key id out of rotation until Enable, across reloads
	// (and replicas, with REDIS_URL). Disabling a disabled key is no error.
	Disable(ctx context.Context, id int) error
	// Enable undoes Disable; the key's automatic state (a rest) stands.
	Enable(ctx context.Context, id int) error
	// Check polls key id's budget upstream now and returns it.
	Check(ctx context.Context, id int) (Budget, error)
	// Named is how a caller may name the key under id (?key=), as /keys
	// shows it; false when there is none. A call that names the key it
	// means is refused when a reload put another under its id.
	Named(id int) (KeyName, bool)
	// Reload re-reads the pool's source (KEYS_FILE, or the .env) and swaps
	// the pool. A file that is refused is not an error: the result's
	// Refused says why and the pool stays as it was.
	Reload(ctx context.Context) (ReloadResult, error)
}

// KeyName is what names one key to an admin call: its mask, or its
// fingerprint, which two keys never share.
type KeyName struct {
	Masked      string
	Fingerprint string
	// MaskShared is set when another key with the same mask was under the
	// id before (a reload put this one there): the mask alone does not
	// tell which of them the caller saw.
	MaskShared bool
}

// ErrUnknownKey is returned by Pool methods for an id not in the pool; the
// API answers 404.
var ErrUnknownKey = errors.New("no such key")

// Budget is a key's budget as /keys and the check answer show it: the
// budget package's view, so that both answers have one shape.
type Budget = budget.View

// ReloadResult is what a reload did, by key id.
type ReloadResult struct {
	// Keys is the number of keys in the pool after the reload.
	Keys int `json:"keys"`
	// Added, Removed and Kept are key ids, ordered: Added and Kept in the
	// new pool, Removed in the old one. A key is its secret: one whose id
	// changed is kept (and listed in Renumbered), and a new secret under
	// an old id is both removed and added.
	Added   []int `json:"added"`
	Removed []int `json:"removed"`
	Kept    []int `json:"kept"`
	// Renumbered are the kept keys whose id changed, by new id; absent
	// when none did.
	Renumbered []Move `json:"renumbered,omitempty"`
	// Repeated are the source's ids whose key repeats an earlier id's,
	// used once under the earlier; absent when none does.
	Repeated []Repeat `json:"repeated,omitempty"`
	// Refused, when not empty, says why the source was refused; the pool
	// is then unchanged and the lists are empty.
	Refused string `json:"refused,omitempty"`
}

// Repeat is a key given twice in the pool's source: under id, and first
// under same_as, whose id it has.
type Repeat struct {
	ID     int `json:"id"`
	SameAs int `json:"same_as"`
}

// Move is a kept key's id before a reload (from) and after it (to).
type Move struct {
	From int `json:"from"`
	To   int `json:"to"`
}

// Handler serves /admin/*. Mount it at the /admin/ prefix (all methods).
type Handler struct {
	guard *access.Guard
	pool  Pool
	log   *slog.Logger
}

// New returns the admin API. With no admin token in guard every path
// answers 404, as if the API did not exist. log (nil: discard) gets the
// console lines of disable and enable.
func New(guard *access.Guard, pool Pool, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{guard: guard, pool: pool, log: log}
}

// ServeHTTP routes POST /admin/reload and POST /admin/keys/{id}/{disable,
// enable,check}, after the admin token is checked.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !h.guard.AdminEnabled() {
		writeError(w, http.StatusNotFound, "invalid_request_error", "not found: the admin API is off (set ADMIN_TOKEN to enable it)")
		return
	}
	if !h.guard.Admin(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="keygate admin"`)
		writeError(w, http.StatusUnauthorized, "invalid_request_error", "missing or invalid admin token: send Authorization: Bearer <ADMIN_TOKEN>")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/admin/")
	if !ok {
		writeError(w, http.StatusNotFound, "invalid_request_error", routesHint)
		return
	}
	if rest == "reload" {
		if !isPost(w, r) {
			return
		}
		h.reload(w, r)
		return
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] != "keys" {
		writeError(w, http.StatusNotFound, "invalid_request_error", routesHint)
		return
	}
	var do func(http.ResponseWriter, *http.Request, int)
	switch parts[2] {
	case "disable":
		do = h.disable
	case "enable":
		do = h.enable
	case "check":
		do = h.check
	default:
		writeError(w, http.StatusNotFound, "invalid_request_error", routesHint)
		return
	}
	if !isPost(w, r) {
		return
	}
	id, err := strconv.Atoi(parts[1])
	if err != nil || id <= 0 || strconv.Itoa(id) != parts[1] {
		writeError(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("invalid key id %q: want a positive number", parts[1]))
		return
	}
	if want, ok := r.URL.Query()["key"]; ok && !h.sameKey(w, id, want[0]) {
		return
	}
	do(w, r, id)
}

// sameKey reports whether the key under id is still want (its mask or its
// fingerprint), as the caller saw it; else it answers 409 (404 for no key).
// Ids follow the source's numbering: after a reload that renumbered the
// pool, a button drawn before it would act on another key. The 409 does
// not name the key now in force by its fingerprint, so that a stale caller
// cannot just retry with it.
func (h *Handler) sameKey(w http.ResponseWriter, id int, want string) bool {
	byPrint := secret.IsFingerprint(want)
	if !byPrint && !secret.IsMask(want) {
		// Perhaps a raw key pasted in: it is not quoted back.
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid ?key=: want the key's mask or fingerprint as /keys shows it, like sk-or-v1-…3f2a or fp-0123456789abcdef; nothing was done")
		return false
	}
	got, ok := h.pool.Named(id)
	switch {
	case !ok:
		writePoolError(w, id, "", ErrUnknownKey)
		return false
	case byPrint && got.Fingerprint != want:
		writeError(w, http.StatusConflict, "key_changed", fmt.Sprintf("key #%d is now %s, not the key with fingerprint %s: ?key= names another key, or the pool was reloaded since; nothing was done", id, got.Masked, want))
		return false
	case !byPrint && got.Masked != want:
		writeError(w, http.StatusConflict, "key_changed", fmt.Sprintf("key #%d is now %s, not %s: ?key= names another key, or the pool was reloaded since; nothing was done", id, got.Masked, want))
		return false
	case !byPrint && got.MaskShared:
		writeError(w, http.StatusConflict, "key_changed", fmt.Sprintf("key #%d is %s, but a reload put it in place of another key masked the same: name it by its fingerprint (?key=fp-…) as /keys shows it now; nothing was done", id, got.Masked))
		return false
	}
	return true
}

const routesHint = "not found: the admin API has POST /admin/reload and POST /admin/keys/{id}/disable, /enable and /check"

func isPost(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodPost {
		return true
	}
	w.Header().Set("Allow", http.MethodPost)
	writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method "+r.Method+" not allowed: the admin API takes POST")
	return false
}

// keyState is the answer to disable and enable.
type keyState struct {
	ID       int  `json:"id"`
	Disabled bool `json:"disabled"`
}

func (h *Handler) disable(w http.ResponseWriter, r *http.Request, id int) {
	if err := h.pool.Disable(r.Context(), id); err != nil {
		writePoolError(w, id, "disabling", err)
		return
	}
	LogDisabled(h.log, id)
	writeJSON(w, http.StatusOK, keyState{ID: id, Disabled: true})
}

func (h *Handler) enable(w http.ResponseWriter, r *http.Request, id int) {
	if err := h.pool.Enable(r.Context(), id); err != nil {
		writePoolError(w, id, "enabling", err)
		return
	}
	LogEnabled(h.log, id)
	writeJSON(w, http.StatusOK, keyState{ID: id, Disabled: false})
}

// checkAnswer is the answer to check.
type checkAnswer struct {
	ID     int    `json:"id"`
	Budget Budget `json:"budget"`
}

func (h *Handler) check(w http.ResponseWriter, r *http.Request, id int) {
	b, err := h.pool.Check(r.Context(), id)
	if err != nil {
		writePoolError(w, id, "checking the budget of", err)
		return
	}
	writeJSON(w, http.StatusOK, checkAnswer{ID: id, Budget: b})
}

func (h *Handler) reload(w http.ResponseWriter, r *http.Request) {
	res, err := h.pool.Reload(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal_error", "reload failed: "+err.Error())
		return
	}
	if res.Refused != "" {
		writeError(w, http.StatusUnprocessableEntity, "reload_refused", "reload refused, the pool is unchanged: "+res.Refused)
		return
	}
	res.Added, res.Removed, res.Kept = ids(res.Added), ids(res.Removed), ids(res.Kept)
	writeJSON(w, http.StatusOK, res)
}

// writePoolError maps a Pool error to its answer: unknown key 404, a
// timeout 504, anything else (an upstream that failed the check) 502.
func writePoolError(w http.ResponseWriter, id int, doing string, err error) {
	switch {
	case errors.Is(err, ErrUnknownKey):
		writeError(w, http.StatusNotFound, "invalid_request_error", fmt.Sprintf("no key #%d in the pool", id))
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "upstream_timeout", fmt.Sprintf("%s key #%d timed out", doing, id))
	default:
		writeError(w, http.StatusBadGateway, "upstream_error", fmt.Sprintf("%s key #%d failed: %v", doing, id, err))
	}
}

// apiError is the gateway's OpenAI-style error shape.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    int    `json:"code"`
}

func writeError(w http.ResponseWriter, code int, typ, msg string) {
	writeJSON(w, code, apiError{Error: apiErrorBody{Message: msg, Type: typ, Code: code}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"error":{"message":"encoding response failed","type":"internal_error","code":500}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
