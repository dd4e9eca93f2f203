// Package keysfile reads the key pool from a KEYS_FILE and watches that file
// for changes, so that keys can be added, rotated and removed without a
// restart.
//
// The file is a .env file (OPENROUTER_API_KEY_<N>=<key> lines, # comments,
// blanks), read by godotenv and turned into a pool by config.PoolFrom, so a
// file means exactly what the same variables in the environment mean. A file
// that does not parse, or holds no key, is refused with a reason; the caller
// keeps its last good pool.
package keysfile

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/joho/godotenv"

	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/keyring"
)

// MaxSize is the largest keys file read; a pool of thousands of keys is a
// few hundred KiB, and anything larger is a mistake (a wrong path).
const MaxSize = 1 << 20

// Errors a refusal wraps, for callers that branch on the cause. Their text
// never quotes the file: a line that does not parse may hold a key.
var (
	// ErrSyntax: a line is neither KEY=value, a comment nor blank. The
	// error ParseEnv returns wraps it and names the line by its number
	// when it can tell.
	ErrSyntax = errors.New("not a .env file: a line is neither KEY=value, a # comment nor blank (the line is not quoted here, as it may hold a key)")
	// ErrNoKeys: the file parses but would leave the pool empty.
	ErrNoKeys = errors.New("no key in it: want OPENROUTER_API_KEY_<N>=<key> lines (or OPENROUTER_API_KEYS=<k1>,<k2>)")
	// ErrTooLarge: the file is larger than MaxSize.
	ErrTooLarge = fmt.Errorf("larger than %d bytes", MaxSize)
)

// File is one good reading of a keys file.
type File struct {
	// Path is the file as it was named (not its symlink target).
	Path string
	// Entries is the pool, ordered by id, duplicates dropped.
	Entries []keyring.Entry
	// Duplicates are ids whose key repeats an earlier one's, for a warning.
	Duplicates []config.Duplicate
	// Repeated are variables set on more than one line (RepeatedNames),
	// for a warning: only the last counts.
	Repeated []string
	// Sum is the SHA-256 of the file's bytes: two readings with the same
	// Sum hold the same pool.
	Sum [sha256.Size]byte
	// vars are the file's variables, for ApplyTo.
	vars map[string]string
}

// ApplyTo makes f's pool cfg's (config.Config.UsePool), with start-up's
// warnings about its keys: a key OpenRouter would refuse, a short one, a
// near-miss variable name.
func (f File) ApplyTo(cfg *config.Config) error {
	if err := cfg.UsePool(f.vars); err != nil {
		return fmt.Errorf("keys file %s refused: %w", f.Path, err)
	}
	return nil
}

// Read reads and parses the keys file at path. Its errors name the path and
// wrap ErrSyntax, ErrNoKeys, ErrTooLarge or the os error.
func Read(path string) (File, error) {
	data, err := readLimited(path)
	if err != nil {
		return File{}, fmt.Errorf("keys file %s refused: %w", path, err)
	}
	vars, entries, dups, err := parse(data)
	if err != nil {
		return File{}, fmt.Errorf("keys file %s refused: %w", path, err)
	}
	return File{Path: path, Entries: entries, Duplicates: dups, Repeated: RepeatedNames(data, vars), Sum: sha256.Sum256(data), vars: vars}, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	if len(data) > MaxSize {
		return nil, ErrTooLarge
	}
	return data, nil
}

// ParseEnv reads the variables of a .env file's bytes. A line it cannot
// read gives an error wrapping ErrSyntax that names the line by its
// number (a file of many lines with one typo is otherwise a hunt):
// godotenv's own message quotes the rest of the file from the bad line
// on, which may hold keys, and is not passed on.
//
// A UTF-8 byte order mark (Notepad's, or Windows PowerShell's
// Set-Content -Encoding UTF8) is skipped; godotenv reads it as part of the
// first name, refusing a file whose lines are all good. A UTF-16 file
// (Windows PowerShell's > and Out-File) is refused as such.
func ParseEnv(data []byte) (map[string]string, error) {
	if bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) {
		return nil, fmt.Errorf("%w: the file is UTF-16 (as Windows PowerShell's > and Out-File write it); save it as UTF-8", ErrSyntax)
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	vars, err := godotenv.Parse(bytes.NewReader(data))
	if err != nil {
		if n := badLine(data, err); n > 0 {
			return nil, fmt.Errorf("line %d: %w", n, ErrSyntax)
		}
		return nil, ErrSyntax
	}
	return vars, nil
}

// badLine is the number (from 1) of the line of data where godotenv's
// parse error err arose, or 0 when err does not tell. godotenv (v1.5)
// quotes what it read from: for a bad variable name, the rest of the
// input from that statement on, a suffix of data; for a quote never
// closed, the value's first line, whose opening quote is then the last
// unescaped one of its kind in data.
func badLine(data []byte, err error) int {
	src := bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")) // as godotenv reads it
	line := func(at int) int { return 1 + bytes.Count(src[:at], []byte("\n")) }
	msg := err.Error()
	if _, near, ok := strings.Cut(msg, " in variable name near "); ok {
		if rest, err := strconv.Unquote(near); err == nil && bytes.HasSuffix(src, []byte(rest)) {
			return line(len(src) - len(rest))
		}
		return 0
	}
	if v, ok := strings.CutPrefix(msg, "unterminated quoted value "); ok && v != "" {
		q := v[0]
		for i := len(src) - 1; i >= 0; i-- {
			if src[i] == q && (i == 0 || src[i-1] != '\\') {
				return line(i)
			}
		}
	}
	return 0
}

// Parse turns the bytes of a keys file into a pool. Variables other than the
// key variables are ignored, so that a gateway's .env works as is.
func Parse(data []byte) ([]keyring.Entry, []config.Duplicate, error) {
	_, entries, dups, err := parse(data)
	return entries, dups, err
}

// parse is Parse, with the file's variables.
func parse(data []byte) (map[string]string, []keyring.Entry, []config.Duplicate, error) {
	vars, err := ParseEnv(data)
	if err != nil {
		return nil, nil, nil, err
	}
	entries, dups, err := config.PoolFrom(vars)
	if err != nil {
		return nil, nil, nil, err
	}
	// An example file left unedited is refused as the environment is.
	if err := config.Placeholders(vars); err != nil {
		return nil, nil, nil, err
	}
	if len(entries) == 0 {
		return nil, nil, nil, ErrNoKeys
	}
	return vars, entries, dups, nil
}

// Change is what a new pool does to the old one. A key is the same key when
// its secret is: it is kept even when its id changed (taking a key out of
// OPENROUTER_API_KEYS renumbers the ones after it), and a new secret under
// an old id is both removed (the old key) and added (the new one).
type Change struct {
	// Added and Kept are ids in the new pool, Removed ids in the old one.
	Added, Removed, Kept []int
	// Renumbered are the kept keys whose id changed, ordered by new id.
	Renumbered []Move
}

// Move is a kept key's id before a reload and after it.
type Move struct{ From, To int }

// Was is the id the kept key id of the new pool had in the old one.
func (c Change) Was(id int) int {
	for _, m := range c.Renumbered {
		if m.To == id {
			return m.From
		}
	}
	return id
}

// Diff compares two pools; the lists are ordered by id. Keys are matched by
// secret, each old key to one new key at most.
func Diff(old, next []keyring.Entry) Change {
	var c Change
	oldBySecret := make(map[[32]byte]int, len(old))
	for _, e := range old {
		d := e.Secret.Digest()
		if _, dup := oldBySecret[d]; !dup {
			oldBySecret[d] = e.ID
		}
	}
	matched := make(map[int]bool, len(next))
	for _, e := range next {
		d := e.Secret.Digest()
		id, ok := oldBySecret[d]
		if !ok {
			c.Added = append(c.Added, e.ID)
			continue
		}
		delete(oldBySecret, d)
		matched[id] = true
		c.Kept = append(c.Kept, e.ID)
		if id != e.ID {
			c.Renumbered = append(c.Renumbered, Move{From: id, To: e.ID})
		}
	}
	for _, e := range old {
		if !matched[e.ID] {
			c.Removed = append(c.Removed, e.ID)
		}
	}
	slices.Sort(c.Added)
	slices.Sort(c.Removed)
	slices.Sort(c.Kept)
	slices.SortFunc(c.Renumbered, func(a, b Move) int { return a.To - b.To })
	return c
}
