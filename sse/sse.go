// Package sse splits a server-sent events stream into its events as the
// bytes arrive, in whatever pieces the reads cut them: the stream hold of
// the relay, the streamed POST /run and the usage tap all read streams
// through it. It follows the WHATWG event-stream rules: one byte order mark
// at the start is dropped; lines end in "\n", "\r\n" or "\r"; a line
// starting with ":" is a comment; "data:" lines (one space after the colon
// dropped) join with "\n"; a blank line ends an event, which is dispatched
// only if it had a data line.
package sse

import "bytes"

// Event is one dispatched event. Its slices are the Splitter's or the
// piece's and stay valid only until the next call to Next.
type Event struct {
	// Name is the event: field, empty for the default "message".
	Name []byte
	// Data is the event's data lines joined by "\n".
	Data []byte
}

// DefaultMax bounds an event's data when Splitter.Max is zero.
const DefaultMax = 256 << 10

// Splitter is an incremental event splitter. The zero value is ready to
// use; it allocates only to keep a line that spans reads and an event's
// data, and reuses both.
type Splitter struct {
	// Max bounds an event's data and a line's length in bytes; an event
	// past it is skipped whole, however it is split. Zero means DefaultMax.
	Max int

	line []byte // a line begun in an earlier piece
	data []byte
	// alias is the event's one data line while it lies in the piece being
	// read: the rule, which so costs no copy. It is copied into data when
	// a second line comes or the piece ends first.
	alias   []byte
	aliased bool
	name    []byte
	hasData bool
	// begun: the stream's first bytes are read, past a leading BOM
	// (U+FEFF, which the rules drop); bom counts the bytes of one read so
	// far, while it may be split across pieces.
	begun bool
	bom   int8
	// cr: the last byte seen ended a line with "\r", so a "\n" right
	// after it belongs to the same line end.
	cr bool
	// long: the current line, or the current event, outgrew Max.
	longLine  bool
	longEvent bool
	// Comments counts the comment lines seen, for callers that hold a
	// stream while only comments come.
	Comments int
	// Skipped counts the events dropped for outgrowing Max, for callers
	// that must not lose one without a word.
	Skipped int
}

func (s *Splitter) max() int {
	if s.Max > 0 {
		return s.Max
	}
	return DefaultMax
}

// Next reads p until an event is complete and returns it, with the rest of
// p not yet read. ok is false when p ran out first; call Next again with
// the next piece. A typical loop:
//
//	for ev, rest, ok := s.Next(p); ok; ev, rest, ok = s.Next(rest) { … }
func (s *Splitter) Next(p []byte) (ev Event, rest []byte, ok bool) {
	if !s.begun {
		p = s.skipBOM(p)
	}
	for len(p) > 0 {
		if s.cr {
			s.cr = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}
		end, next := lineEnd(p)
		if end < 0 {
			s.keep(p)
			s.unalias()
			return Event{}, nil, false
		}
		if p[end] == '\r' && next == end+1 && next == len(p) {
			// A "\r" at the end of a piece: a "\n" may follow in the next.
			s.cr = true
		}
		line, inPiece := p[:end], true
		if len(s.line) > 0 || s.longLine {
			s.keep(line)
			line, inPiece = s.line, false
		}
		long := s.longLine
		s.line, s.longLine = s.line[:0], false
		p = p[next:]
		if long || len(line) > s.max() {
			s.longEvent = true
			continue
		}
		if len(line) == 0 {
			if ev, ok := s.dispatch(); ok {
				return ev, p, true
			}
			continue
		}
		s.field(line, inPiece)
	}
	s.unalias()
	return Event{}, nil, false
}

// utf8BOM is U+FEFF in UTF-8: one at the very start of a stream is dropped.
const utf8BOM = "\xEF\xBB\xBF"

// skipBOM drops from p what continues a leading BOM. Bytes that began one
// but are followed by something else are the first line's start.
func (s *Splitter) skipBOM(p []byte) []byte {
	for len(p) > 0 && int(s.bom) < len(utf8BOM) {
		if p[0] != utf8BOM[s.bom] {
			s.begun = true
			if s.bom > 0 {
				s.keep([]byte(utf8BOM[:s.bom]))
			}
			return p
		}
		p, s.bom = p[1:], s.bom+1
	}
	s.begun = int(s.bom) == len(utf8BOM)
	return p
}

// unalias copies an aliased data line into data, before its piece goes.
func (s *Splitter) unalias() {
	if s.aliased {
		s.data = append(s.data[:0], s.alias...)
		s.alias, s.aliased = nil, false
	}
}

// lineEnd finds the first line end in p: end is where the line stops,
// next where the next line starts; end is -1 when p holds none.
func lineEnd(p []byte) (end, next int) {
	n := bytes.IndexByte(p, '\n')
	scan := p
	if n >= 0 {
		scan = p[:n]
	}
	if r := bytes.IndexByte(scan, '\r'); r >= 0 {
		if r+1 < len(p) && p[r+1] == '\n' {
			return r, r + 2
		}
		return r, r + 1
	}
	if n < 0 {
		return -1, 0
	}
	return n, n + 1
}

// keep adds a piece of the current line, up to Max.
func (s *Splitter) keep(p []byte) {
	if s.longLine {
		return
	}
	if len(s.line)+len(p) > s.max() {
		s.line, s.longLine = s.line[:0], true
		return
	}
	s.line = append(s.line, p...)
}

// field takes one non-blank line of the current event; inPiece says that
// line lies in the piece being read.
func (s *Splitter) field(line []byte, inPiece bool) {
	if line[0] == ':' {
		s.Comments++
		return
	}
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "data":
		if s.longEvent {
			return
		}
		if !s.hasData && inPiece && len(value) <= s.max() {
			s.alias, s.aliased, s.hasData = value, true, true
			return
		}
		s.unalias()
		if s.hasData {
			s.data = append(s.data, '\n')
		}
		if len(s.data)+len(value) > s.max() {
			s.longEvent = true
			return
		}
		s.data = append(s.data, value...)
		s.hasData = true
	case "event":
		s.name = append(s.name[:0], value...)
	}
}

// dispatch ends the current event at a blank line.
func (s *Splitter) dispatch() (Event, bool) {
	ev := Event{Name: s.name, Data: s.data}
	if s.aliased {
		ev.Data = s.alias
	}
	ok := s.hasData && !s.longEvent
	if s.longEvent {
		s.Skipped++
	}
	s.data, s.name, s.hasData, s.longEvent = s.data[:0], s.name[:0], false, false
	s.alias, s.aliased = nil, false
	return ev, ok
}

// Long reports whether the current line, or the current event, outgrew
// Max: the event will be skipped.
func (s *Splitter) Long() bool { return s.longLine || s.longEvent }

// Kept is how many bytes of the current line and event the splitter
// keeps between pieces: a caller that must read the end of an event
// longer than Max (which the splitter drops once it outgrows Max) can
// begin keeping it itself before then.
func (s *Splitter) Kept() int { return len(s.line) + len(s.data) }

// Pending reports whether an event has begun that no blank line has ended:
// at the end of a stream, its data is dropped, as the rules say.
func (s *Splitter) Pending() bool { return s.hasData || len(s.line) > 0 || s.longEvent || s.longLine }

// End returns the event a stream ended in before its blank line, as if
// the line had come: SSE readers drop such an event, but a gateway that
// counts what upstream billed, or reads an answer cut short, needs it.
// ok is false when no event was in progress.
func (s *Splitter) End() (ev Event, ok bool) {
	ev, _, ok = s.Next(eventEnd)
	return ev, ok
}

// eventEnd ends a line and the event in progress; Next only reads it.
var eventEnd = []byte("\n\n")

// keepCap is the largest buffer Reset keeps: a splitter pooled after one
// long event must not hold its size for ever.
const keepCap = 4 << 10

// Reset forgets any event in progress and keeps the buffers, unless one
// outgrew keepCap.
func (s *Splitter) Reset() {
	max := s.Max
	line, data, name := s.line[:0], s.data[:0], s.name[:0]
	if cap(line) > keepCap || cap(data) > keepCap || cap(name) > keepCap {
		line, data, name = nil, nil, nil
	}
	*s = Splitter{Max: max, line: line, data: data, name: name}
}
