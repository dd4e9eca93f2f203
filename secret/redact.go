package secret

import (
	"cmp"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"
)

// Redactor replaces any of a set of keys found in text by a masked form. It
// is the one redactor every byte toward a client or a log passes: upstream
// answers (headers, trailers, bodies of every status), log records, /run's
// document. Besides a key as it is, it finds a key written with JSON
// escapes (`\u002d` for "-", `\/` for "/"), the form a JSON encoder upstream
// may give it, and a key percent-encoded, as a URL in a Location header or
// a body quotes a key holding '+', '/' or '=' (a base64 key of an
// upstream other than OpenRouter). A nil Redactor masks nothing.
type Redactor struct {
	keys     []form   // every form of every key, longest first
	lower    []string // the forms in lower case
	longest  int
	shortest int
	first    [256]bool // the first bytes of the keys
	// inKey holds the bytes keys are made of: a %XX decoding to one may
	// be a key's character percent-encoded where no encoder must.
	inKey [256]bool
	// common is what every form starts with, when that is long enough
	// to search for ("sk-or-v1-" in an OpenRouter pool); else "".
	common string
	// commonOff is where in common the search starts: at its first byte
	// that is no letter or digit ("-or-v1-"), rarer in text than "s".
	commonOff int
	// next, once set (Replace), is the redactor in force: a pool reload
	// brings new keys, which must be masked too.
	next atomic.Pointer[Redactor]
}

// Replace makes r mask keys from now on (a reloaded pool's, with those of
// calls still in flight on the old one). Safe while r is in use; a stream
// masked across the change holds back as much as the old keys needed.
func (r *Redactor) Replace(keys []Key) { r.next.Store(NewRedactor(keys)) }

// live is the redactor in force: r, or the one Replace put in its place.
func (r *Redactor) live() *Redactor {
	if r != nil {
		if n := r.next.Load(); n != nil {
			return n
		}
	}
	return r
}

// NewRedactor returns a Redactor for keys.
func NewRedactor(keys []Key) *Redactor {
	ks := make([]Key, 0, len(keys))
	for _, k := range keys {
		if !k.IsZero() {
			ks = append(ks, k)
		}
	}
	fs := make([]form, 0, len(ks))
	for _, k := range ks {
		fs = appendForms(fs, k)
	}
	// Longest first: a key that extends another must not be cut at the
	// shorter one's end, leaving its own secret tail in the clear.
	slices.SortStableFunc(fs, func(a, b form) int { return cmp.Compare(len(b.text), len(a.text)) })
	r := &Redactor{keys: fs}
	for _, f := range fs {
		r.lower = append(r.lower, strings.ToLower(f.text))
		r.first[f.text[0]] = true
	}
	for _, k := range ks {
		for i := 0; i < len(k.v.raw); i++ {
			r.inKey[k.v.raw[i]] = true
		}
	}
	if len(fs) > 0 {
		r.longest, r.shortest = len(fs[0].text), len(fs[len(fs)-1].text)
		common := fs[0].text
		for _, f := range fs[1:] {
			n := 0
			for n < len(common) && n < len(f.text) && common[n] == f.text[n] {
				n++
			}
			common = common[:n]
		}
		// A single form is searched as it is (indexKey); a prefix
		// shorter than "sk-" is too common in text to be worth it.
		if len(fs) > 1 && len(common) >= 3 {
			r.common = common
			for i := 0; i < len(common); i++ {
				if c := common[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
					r.commonOff = i
					break
				}
			}
		}
	}
	return r
}

// form is one way a key is written in text: as it is, or percent-encoded.
type form struct {
	text string
	k    Key
}

// appendForms appends k's forms to fs: k as it is, and each distinct way a
// URL encoder writes it (url.QueryEscape and url.PathEscape, with the
// hex digits of their escapes in upper and in lower case).
func appendForms(fs []form, k Key) []form {
	start := len(fs)
	fs = append(fs, form{k.v.raw, k})
	for _, e := range [...]string{url.QueryEscape(k.v.raw), url.PathEscape(k.v.raw)} {
		for _, t := range [...]string{e, lowerEscapes(e)} {
			if !slices.ContainsFunc(fs[start:], func(f form) bool { return f.text == t }) {
				fs = append(fs, form{t, k})
			}
		}
	}
	return fs
}

// lowerEscapes is e with the hex digits of its %XX escapes in lower case.
func lowerEscapes(e string) string {
	if !strings.Contains(e, "%") {
		return e
	}
	b := []byte(e)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = toLowerHex(b[i+1]), toLowerHex(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func toLowerHex(c byte) byte {
	if 'A' <= c && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}

// HoldsKeyFold reports whether s holds a key with its letters' case
// changed: a header name, which net/http writes canonicalized
// ("X-Sk-Or-V1-…").
func (r *Redactor) HoldsKeyFold(s string) bool {
	r = r.live()
	// Shorter names (most) cannot hold a key and cost nothing.
	if r.Empty() || len(s) < r.shortest {
		return false
	}
	low := strings.ToLower(s)
	for _, k := range r.lower {
		if strings.Contains(low, k) {
			return true
		}
	}
	return false
}

// Empty reports whether r masks nothing.
func (r *Redactor) Empty() bool {
	r = r.live()
	return r == nil || len(r.keys) == 0
}

// MaxHold is the most bytes a streamed text may need held back between two
// pieces: a key cut by the end of one, in its longest escaped form.
func (r *Redactor) MaxHold() int {
	r = r.live()
	if r.Empty() {
		return 0
	}
	return 6*r.longest + 6
}

// Redact returns s with every occurrence of a key masked. Scanning from
// the left, the first key found is masked, the longest where several start
// at one place; s comes back as it is when it holds no key.
func (r *Redactor) Redact(s string) string {
	r = r.live()
	out, _ := r.redact(s, true)
	return out
}

// RedactPrefix is Redact for a text that goes on after s: it masks s[:n]
// and returns it with n. From n on, s may hold the start of a key (or of a
// longer key than the one found there), cut by the end of s: give those
// bytes again with what follows.
func (r *Redactor) RedactPrefix(s string) (string, int) {
	r = r.live()
	return r.redact(s, false)
}

func (r *Redactor) redact(s string, final bool) (string, int) {
	if r.Empty() || final && len(s) < r.shortest {
		// No form of a key (its escapes only lengthen it) fits in s.
		return s, len(s)
	}
	var small [4]span
	found, end := r.scan(s, final, small[:0])
	if len(found) == 0 {
		return s[:end], end
	}
	var b strings.Builder
	last := 0
	for _, m := range found {
		b.WriteString(s[last:m.at])
		b.WriteString(m.k.v.masked)
		last = m.end
	}
	b.WriteString(s[last:end])
	return b.String(), end
}

// MaskInPlace masks every key in b by a mask of the same length (the key's
// public prefix, asterisks and its last four characters), so that a body's
// declared length stays true. It returns n: b[:n] is final; from n on, b
// may hold a key cut by its end, to be given again with what follows
// (unless final, when n is len(b)).
func (r *Redactor) MaskInPlace(b []byte, final bool) int {
	r = r.live()
	if r.Empty() {
		return len(b)
	}
	var small [4]span
	// The scan reads b as a string and is done before b is written.
	found, n := r.scan(unsafeString(b), final, small[:0])
	for _, m := range found {
		sameLengthMask(b[m.at:m.end], m.k)
	}
	return n
}

// sameLengthMask overwrites dst, which holds (a form of) k, with k's
// public prefix, asterisks and its last four characters when at least
// eight characters stay hidden, as Mask shows them.
func sameLengthMask(dst []byte, k Key) {
	masked := k.v.masked
	prefix, last4, _ := strings.Cut(masked, "…")
	if len(prefix)+len(last4) >= len(dst) {
		prefix, last4 = "", ""
	}
	n := copy(dst, prefix)
	for i := n; i < len(dst)-len(last4); i++ {
		dst[i] = '*'
	}
	copy(dst[len(dst)-len(last4):], last4)
}

// span is a key found in a text: text[at:end] is (a form of) k.
type span struct {
	at, end int
	k       Key
}

// scan appends to found the keys in s, left to right, and returns it with
// how much of s is final: from there on, s may end in a key (or an escape)
// cut short, unless final. r is the redactor in force (live): scan does
// not follow a Replace itself.
func (r *Redactor) scan(s string, final bool, found []span) ([]span, int) {
	if strings.Contains(s, `\u`) || strings.Contains(s, `\/`) || (!final && strings.HasSuffix(s, `\`)) || r.percentKeyBytes(s, final) {
		return r.scanEscaped(s, final, found)
	}
	return r.scanPlain(s, final, found)
}

// percentKeyBytes reports whether s holds a %XX escape of a byte keys are
// made of, or (unless final) ends in what may start one: a key written by
// an encoder that escapes characters no encoder must (RFC 3986 lets any
// byte be percent-encoded: "sk%2Dor%2Dv1%2D…"), which no fixed form
// (appendForms) covers. Common escapes of text (%20, %2F, %3A) are of
// bytes an OpenRouter key does not hold, and keep the plain scan.
func (r *Redactor) percentKeyBytes(s string, final bool) bool {
	for i := 0; ; {
		x := strings.IndexByte(s[i:], '%')
		if x < 0 {
			return false
		}
		i += x
		if i+3 > len(s) {
			return !final && isHex(s[i+1:])
		}
		if h, ok := hex2(s[i+1 : i+3]); ok && r.inKey[h] {
			return true
		}
		i++
	}
}

func hex2(s string) (byte, bool) {
	a, ok1 := hexVal(s[0])
	b, ok2 := hexVal(s[1])
	return byte(a<<4 | b), ok1 && ok2
}

// scanEscaped scans s with its JSON escapes of ASCII characters and its
// percent escapes decoded: the decoded view is searched, and what is found
// is mapped back to s.
func (r *Redactor) scanEscaped(s string, final bool, found []span) ([]span, int) {
	v := make([]byte, 0, len(s))
	pos := make([]int, 0, len(s)+1) // pos[i]: where view byte i starts in s
	i := 0
	cut := false // s ends inside an escape, from i on
loop:
	for i < len(s) {
		c := s[i]
		if c == '%' {
			if i+3 <= len(s) {
				if h, ok := hex2(s[i+1 : i+3]); ok {
					v, pos = append(v, h), append(pos, i)
					i += 3
					continue
				}
			} else if !final && isHex(s[i+1:]) {
				cut = true
				break loop
			}
		}
		if c != '\\' {
			v, pos = append(v, c), append(pos, i)
			i++
			continue
		}
		if i+1 >= len(s) {
			if !final {
				cut = true
				break loop
			}
			v, pos = append(v, c), append(pos, i)
			i++
			continue
		}
		switch s[i+1] {
		case '/':
			v, pos = append(v, '/'), append(pos, i)
			i += 2
			continue
		case 'u':
			if i+6 > len(s) && !final && isHex(s[i+2:]) {
				cut = true
				break loop
			}
			if i+6 <= len(s) {
				if h, ok := hex4(s[i+2 : i+6]); ok && h < 0x80 {
					v, pos = append(v, byte(h)), append(pos, i)
					i += 6
					continue
				}
			}
		}
		// Any other escape ("\\", "\n", …) is two bytes no key holds.
		v, pos = append(v, c, s[i+1]), append(pos, i, i+1)
		i += 2
	}
	pos = append(pos, i)
	inView, n := r.scanPlain(string(v), final && !cut, nil)
	for _, m := range inView {
		found = append(found, span{at: pos[m.at], end: pos[m.end], k: m.k})
	}
	return found, pos[n]
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if _, ok := hexVal(s[i]); !ok {
			return false
		}
	}
	return true
}

func hex4(s string) (int, bool) {
	n := 0
	for i := 0; i < 4; i++ {
		d, ok := hexVal(s[i])
		if !ok {
			return 0, false
		}
		n = n<<4 | d
	}
	return n, true
}

func hexVal(c byte) (int, bool) {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0'), true
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10, true
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}

// scanPlain finds the keys as they are in s.
func (r *Redactor) scanPlain(s string, final bool, found []span) ([]span, int) {
	last := 0 // s[:last] is scanned
	// next[i] is where key i next occurs at or after some earlier last,
	// -1 when nowhere: each key's search goes forward only, so a text
	// quoting one key many times costs no more than one pass per key.
	var small [16]int
	next := small[:0]
	if len(r.keys) > len(small) {
		next = make([]int, 0, len(r.keys))
	}
	for range r.keys {
		next = append(next, -2) // not searched yet
	}
	for {
		at, f := r.nextKey(s, last, next)
		if at < 0 {
			break
		}
		if !final {
			// A key cut by the end of s, starting here or before, may
			// hold this one: it must be seen whole first.
			if h := r.holdFrom(s, last); h <= at {
				return found, h
			}
		}
		found = append(found, span{at: at, end: at + len(f.text), k: f.k})
		last = at + len(f.text)
	}
	if !final {
		return found, r.holdFrom(s, last)
	}
	return found, len(s)
}

// nextKey is where the first key at or after last starts in s, and that
// key's form (the longest where several start there); -1 when none is left.
func (r *Redactor) nextKey(s string, last int, next []int) (int, form) {
	if r.common != "" {
		// One search for what all keys start with, then the keys at
		// each place it occurs: one pass for the whole pool.
		pat := r.common[r.commonOff:]
		for i := last + r.commonOff; i < len(s); {
			x := strings.Index(s[i:], pat)
			if x < 0 {
				break
			}
			p := i + x - r.commonOff
			for _, f := range r.keys { // longest first: it wins a tie
				if strings.HasPrefix(s[p:], f.text) {
					return p, f
				}
			}
			i += x + 1
		}
		return -1, form{}
	}
	at, found := -1, form{}
	for i, f := range r.keys { // longest first: it wins a tie
		if next[i] == -2 || (next[i] >= 0 && next[i] < last) {
			next[i] = -1
			if x := indexKey(s[last:], f.text); x >= 0 {
				next[i] = last + x
			}
		}
		if x := next[i]; x >= 0 && (at < 0 || x < at) {
			at, found = x, f
		}
	}
	return at, found
}

// cutKey reports whether t is a proper prefix of a key: the start of one
// that the end of the text cut.
func (r *Redactor) cutKey(t string) bool {
	for _, f := range r.keys {
		if len(t) < len(f.text) && strings.HasPrefix(f.text, t) {
			return true
		}
	}
	return false
}

// holdFrom is where, at or after from, the end of s may be a key cut short;
// len(s) when nowhere.
func (r *Redactor) holdFrom(s string, from int) int {
	for p := max(from, len(s)-r.longest+1); p < len(s); p++ {
		if r.first[s[p]] && r.cutKey(s[p:]) {
			return p
		}
	}
	return len(s)
}

// unsafeString views b as a string without copying it, for a scan that is
// done before b changes.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// indexKey is strings.Index(s, raw), faster for a key: it looks for the
// key's last 16 bytes, its secret part, which the vector search skips over
// text quickly (the key's public prefix, "sk-or-v1-", or its first byte
// are common in text), and checks the whole key only where they occur.
func indexKey(s, raw string) int {
	const tailLen = 16
	if len(raw) < 2*tailLen {
		return strings.Index(s, raw)
	}
	off := len(raw) - tailLen
	tail := raw[off:]
	for i := off; i < len(s); {
		x := strings.Index(s[i:], tail)
		if x < 0 {
			return -1
		}
		if p := i + x - off; s[p:p+len(raw)] == raw {
			return p
		}
		i += x + 1
	}
	return -1
}
