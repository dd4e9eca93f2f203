package simulator

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// fault is what a request's directives ask for; the directive list is in
// the package documentation. The *Set fields tell an explicit zero from an
// absent directive.
type fault struct {
	status        int
	hintSet       bool
	hint          ResetHint
	afterSet      bool
	after         time.Duration
	delaySet      bool
	delay         time.Duration
	chunkDelaySet bool
	chunkDelay    time.Duration
	chunks        int
	reset         bool
	truncate      bool
	badJSON       bool
	big           int
	noUsage       bool
	moderation    bool
	guardrail     bool
	provider429   bool
	inFlight      bool
	inband        int // status of the error a 200 carries; 0 for none
	errAfter      int // content chunks before a stream's in-band error
	noData        bool
	jsonStream    bool
	holdSet       bool
	hold          time.Duration
}

// Limits on directive values, so that a typo cannot hang or exhaust a test.
const (
	maxDirectiveDelay = time.Hour
	maxChunks         = 10000
	maxBig            = 256 << 20
)

// Errors of the directive parser, wrapped with the offending item.
var (
	errUnknownDirective = errors.New("unknown directive")
	errBadDirective     = errors.New("bad directive value")
)

// parseDirectives reads a directive list into f, over what f already holds.
func parseDirectives(list string, f *fault) error {
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, value, hasValue := strings.Cut(item, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		value = strings.TrimSpace(value)
		if err := f.apply(name, value, hasValue); err != nil {
			return directiveError(err, item)
		}
	}
	return nil
}

func directiveError(err error, item string) error {
	return &directiveErr{err: err, item: item}
}

type directiveErr struct {
	err  error
	item string
}

func (e *directiveErr) Error() string { return e.err.Error() + ": " + strconv.Quote(e.item) }
func (e *directiveErr) Unwrap() error { return e.err }

func (f *fault) apply(name, value string, hasValue bool) error {
	flag := func(p *bool) error {
		if hasValue {
			return errBadDirective
		}
		*p = true
		return nil
	}
	switch name {
	case "reset":
		if !hasValue {
			f.reset = true
			return nil
		}
		h, ok := parseHint(value)
		if !ok {
			return errBadDirective
		}
		f.hintSet, f.hint = true, h
	case "truncate":
		return flag(&f.truncate)
	case "badjson":
		return flag(&f.badJSON)
	case "nousage":
		return flag(&f.noUsage)
	case "jsonstream":
		return flag(&f.jsonStream)
	case "moderation":
		return flag(&f.moderation)
	case "guardrail":
		return flag(&f.guardrail)
	case "provider429":
		return flag(&f.provider429)
	case "inflight":
		return flag(&f.inFlight)
	case "nodata":
		return flag(&f.noData)
	case "inband":
		n, err := strconv.Atoi(value)
		if err != nil || n < 400 || n > 599 {
			return errBadDirective
		}
		f.inband = n
	case "errorafter":
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 || n > maxChunks {
			return errBadDirective
		}
		f.errAfter = n
		if f.inband == 0 {
			f.inband = http.StatusBadGateway
		}
	case "hold":
		d, ok := parseDuration(value)
		if !ok {
			return errBadDirective
		}
		f.holdSet, f.hold = true, d
	case "status":
		n, err := strconv.Atoi(value)
		if err != nil || !(n == 200 || n >= 400 && n <= 599) {
			return errBadDirective
		}
		f.status = n
	case "after":
		d, ok := parseWait(value)
		if !ok {
			return errBadDirective
		}
		f.afterSet, f.after = true, d
	case "delay":
		d, ok := parseDuration(value)
		if !ok {
			return errBadDirective
		}
		f.delaySet, f.delay = true, d
	case "chunkdelay":
		d, ok := parseDuration(value)
		if !ok {
			return errBadDirective
		}
		f.chunkDelaySet, f.chunkDelay = true, d
	case "chunks":
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 || n > maxChunks {
			return errBadDirective
		}
		f.chunks = n
	case "big":
		n, ok := parseSize(value)
		if !ok {
			return errBadDirective
		}
		f.big = n
	default:
		return errUnknownDirective
	}
	return nil
}

// wait is the delay a directive's Retry-After announces (after=, default
// 1s).
func (f *fault) wait() time.Duration {
	if f.afterSet {
		return f.after
	}
	return defaultRetryAfter
}

// errorHint is the reset hint the directives ask for on an error reply.
func (f *fault) errorHint() hint {
	h := hint{set: f.hintSet, form: f.hint, after: defaultRetryAfter}
	if f.status == 429 && !f.hintSet {
		h.set, h.form = true, HintRetryAfter
	}
	if f.afterSet {
		h.after = f.after
	}
	return h
}

func parseHint(s string) (ResetHint, bool) {
	for i, n := range hintNames {
		if strings.EqualFold(s, n) {
			return ResetHint(i), true
		}
	}
	return 0, false
}

func parseDuration(s string) (time.Duration, bool) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > maxDirectiveDelay {
		return 0, false
	}
	return d, true
}

// parseWait reads whole seconds or a Go duration.
func parseWait(s string) (time.Duration, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 86400 {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > 24*time.Hour {
		return 0, false
	}
	return d, true
}

// parseSize reads a byte count with an optional binary unit: 100, 100B,
// 512K, 512KB, 512KiB, 8M, 8MB, 1G (case-insensitive), at most maxBig.
func parseSize(s string) (int, bool) {
	num := strings.TrimRight(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
	shift := 0
	switch strings.ToLower(s[len(num):]) {
	case "", "b":
	case "k", "kb", "kib":
		shift = 10
	case "m", "mb", "mib":
		shift = 20
	case "g", "gb", "gib":
		shift = 30
	default:
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
	if err != nil || n > maxBig>>shift {
		return 0, false
	}
	return int(n << shift), true
}
